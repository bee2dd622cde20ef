//! The checkout side: stored objects back into a directory. [`restore`] writes a snapshot's
//! tree, [`unpack`] the files of an image or artifact (layers applied with whiteouts), both
//! through [`dest`], which holds every path inside its destination and away from `.git` and
//! `.store`.

pub mod dest;
pub mod restore;
pub mod unpack;

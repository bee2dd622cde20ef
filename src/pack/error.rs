//! Why bytes are not a pack or pack index as snap writes them (store format §5.2, §5.3): the
//! first thing found wrong, with where it is.

use crate::digest::Digest;

/// The first thing wrong with a pack or a pack index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the pack failed.
    #[error("reading the pack")]
    Read(#[source] std::io::Error),
    /// The stream ends inside a frame.
    #[error("truncated frame at {at}")]
    TruncatedFrame {
        /// Where.
        at: u64,
    },
    /// Bytes that do not start a zstd frame.
    #[error("no zstd frame at {at}")]
    NoFrame {
        /// Where.
        at: u64,
    },
    /// A zstd block of the reserved type.
    #[error("reserved block type in the frame at {at}")]
    ReservedBlock {
        /// The frame.
        at: u64,
    },
    /// A zstd block larger than the format allows.
    #[error("oversized block in the frame at {at}")]
    OversizedBlock {
        /// The frame.
        at: u64,
    },
    /// A frame larger than snap ever writes.
    #[error("the frame at {at} is larger than any snap writes")]
    FrameTooLong {
        /// The frame.
        at: u64,
    },
    /// A frame that decompresses past the bound.
    #[error("a frame decompresses to more than {limit} bytes")]
    FrameOutput {
        /// The bound.
        limit: usize,
    },
    /// A frame zstd cannot decompress.
    #[error("bad zstd frame")]
    BadFrame(#[source] std::io::Error),
    /// A frame that decompresses to nothing.
    #[error("empty frame at {at}")]
    EmptyFrame {
        /// Where.
        at: u64,
    },
    /// No trailer frame at the end.
    #[error("the pack ends without its trailer frame")]
    NoTrailer,
    /// Bytes after the trailer frame.
    #[error("data after the trailer frame")]
    AfterTrailer,
    /// A member's header that is not what snap writes.
    #[error("member header at {frame}+{pos}: {problem}")]
    Header {
        /// The frame holding it.
        frame: u64,
        /// Its offset in the frame's output.
        pos: usize,
        /// What is wrong.
        problem: HeaderProblem,
    },
    /// A member stored inline that runs past the end of its frame.
    #[error("the member at {frame}+{pos} does not end in the frame it starts in")]
    CrossesFrame {
        /// The frame.
        frame: u64,
        /// The member's offset in it.
        pos: usize,
    },
    /// Non-zero tar padding after a member's contents.
    #[error("tar padding of the member whose header is in the frame at {frame} is not zero")]
    Padding {
        /// The frame holding the member's header.
        frame: u64,
    },
    /// A member's content frames end before its contents do.
    #[error("the member whose header is in the frame at {frame} ends early")]
    EndsEarly {
        /// The frame holding its header.
        frame: u64,
    },
    /// A content frame running past the member's end.
    #[error("content frame at {at} does not end at the member's end")]
    ContentFrame {
        /// The frame.
        at: u64,
    },
    /// Not an index file.
    #[error("not a pack index (bad magic or too short)")]
    NotAnIndex,
    /// An index whose checksum fails.
    #[error("pack index checksum mismatch")]
    IndexChecksum,
    /// An index whose length disagrees with its entry count.
    #[error("pack index claims {count} entries but has {bytes} bytes")]
    IndexLength {
        /// Entries claimed.
        count: u64,
        /// Bytes of the index body.
        bytes: usize,
    },
    /// An index entry pointing outside the pack.
    #[error("entry {digest} lies outside the pack")]
    OutsidePack {
        /// The entry.
        digest: Digest,
    },
    /// An index entry pointing outside its frame's output.
    #[error("entry {digest} lies outside its frame")]
    OutsideFrame {
        /// The entry.
        digest: Digest,
    },
    /// Index entries out of order or repeated.
    #[error("pack index entries are not sorted and unique")]
    Unsorted,
}

/// What is wrong with a member's header blocks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// The header block is cut by the end of its frame.
    #[error("a header block cut by the end of its frame")]
    HeaderCut,
    /// The PAX header and its records are cut by the end of the frame.
    #[error("a PAX header cut by the end of its frame")]
    PaxCut,
    /// A PAX size past any bound.
    #[error("a PAX header of absurd size")]
    PaxSize,
    /// Not whole 512-byte blocks.
    #[error("not a whole number of tar blocks")]
    NotWholeBlocks,
    /// Extra blocks that are not a PAX header.
    #[error("extra header blocks that are not a PAX header")]
    ExtraBlocks,
    /// A PAX `size` record that is not a number.
    #[error("bad PAX size")]
    BadPaxSize,
    /// Not a ustar header.
    #[error("not a ustar header")]
    NotUstar,
    /// A member type snap does not write.
    #[error("member type `{kind}` is not a file, directory or symlink")]
    MemberType {
        /// The type byte.
        kind: char,
    },
    /// A numeric field that is not octal.
    #[error("bad octal number `{text}`")]
    BadOctal {
        /// The field's text.
        text: String,
    },
}

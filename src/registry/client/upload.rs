//! Uploading blobs: at most two requests for a blob the repository lacks, one for a blob it
//! has (issue 17).
//!
//! Every upload opens with `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<repo>`, the
//! spec's cross-repository mount with the repository itself (or another one of the same
//! registry) as the source:
//!
//! * **201 Created**: the registry linked a blob it holds there; nothing is sent. This
//!   replaces the `HEAD` that used to come first.
//! * **202 Accepted** with a `Location`: an upload session, exactly what a plain `POST` opens
//!   (registries that do not mount ignore the parameters); the bytes follow in one
//!   `PUT <location>&digest=<digest>`, or in `PATCH`es and a closing `PUT` for large blobs
//!   and `--chunked`.
//!
//! The spec's single-request upload (`POST …?digest=` with the body) is not used:
//! distribution 2.8 answers it 202 without storing the body (INTEROP.md §7), so it would
//! cost a third request there anyway.
//!
//! Every attempt opens its source afresh, so a retry sends the bytes again from the start,
//! and the source fails its last read when the bytes do not hash to the digest: nothing
//! wrong is ever committed (the registry checks the digest too).

use std::io::{self, Read};

use futures_util::StreamExt;
use reqwest::Method;
use reqwest::header::{self, HeaderValue};

use super::{Client, Error, What, octet_stream};
use crate::digest::Digest;
use crate::registry::http::{Body, Failure, Request};

/// Blobs larger than this go up in chunks (`PATCH`es) rather than in one `PUT`.
pub const CHUNKED_ABOVE: u64 = 512 << 20;
/// The size of an upload chunk (raised to the registry's `OCI-Chunk-Min-Length`, up to
/// [`MAX_CHUNK_BYTES`]).
pub const CHUNK_BYTES: u64 = 4 << 20;
/// The largest upload chunk snap holds in memory.
pub const MAX_CHUNK_BYTES: u64 = 64 << 20;

/// A blob to upload: its digest, size, and how to open its bytes (more than once, should a
/// retry be needed).
pub struct Upload<'a> {
    /// The digest.
    pub digest: Digest,
    /// The size.
    pub size: u64,
    /// Opens a reader over exactly the blob's bytes, failing its last read if they are wrong.
    pub open: Box<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync + 'a>,
}

/// How a blob got into the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uploaded {
    /// Its bytes were sent.
    Sent,
    /// The registry already held it (in this repository, or in the one mounted from): no
    /// bytes were sent.
    Mounted,
}

impl Client {
    /// Uploads blobs, up to `jobs` at once, each in one or two requests (see the module
    /// documentation). `from` names another repository of the same registry that may hold
    /// them (mounted from there when it does); by default the repository itself. `done` is
    /// called after each with its size and how it got there.
    ///
    /// # Errors
    /// The first failure (a classified [`Error`], or [`Error::Source`] when a blob's bytes
    /// could not be read or did not match their digest — nothing wrong is ever committed by
    /// the registry, which checks the digest too).
    pub fn upload(
        &self,
        blobs: &[Upload<'_>],
        from: Option<&str>,
        done: &(dyn Fn(u64, Uploaded) + Sync),
    ) -> Result<Vec<Uploaded>, Error> {
        let jobs = self.opts.jobs.max(1);
        let from = from.unwrap_or(&self.remote.repository);
        let results: Vec<(usize, Result<Uploaded, Error>)> = self.rt.block_on(
            futures_util::stream::iter(blobs.iter().enumerate().map(|(i, b)| async move {
                let what = What::blob("uploading", b.digest);
                let r = self
                    .call(true, &what, |auth| self.upload_once(b, from, auth))
                    .await;
                if let Ok(how) = r {
                    done(b.size, how);
                }
                (i, r)
            }))
            .buffer_unordered(jobs)
            .collect(),
        );
        let mut out = vec![Uploaded::Sent; blobs.len()];
        for (i, r) in results {
            out[i] = r?;
        }
        Ok(out)
    }

    /// One whole upload: the mounting `POST`, then (unless it mounted) one `PUT` or `PATCH`es
    /// and a closing `PUT`, from a freshly opened source.
    async fn upload_once(
        &self,
        blob: &Upload<'_>,
        from: &str,
        auth: Option<HeaderValue>,
    ) -> Result<Uploaded, Failure> {
        let mut url = self
            .url("blobs/uploads/")
            .map_err(|e| Failure::Protocol(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("mount", &blob.digest.to_string())
            .append_pair("from", from);
        let start = Request::new(Method::POST, url)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("0"))
            .authorization(&self.base, auth.clone());
        let a = self.http.send(start).await?;
        if a.status() == 201 {
            // Mounted: the registry names what it linked, and it must be this blob.
            return match a.header("docker-content-digest") {
                Some(named) if named.parse::<Digest>().ok() != Some(blob.digest) => {
                    Err(Failure::Protocol(format!(
                        "it mounted `{}` when asked for {}",
                        super::failures::one_line(named),
                        blob.digest
                    )))
                }
                _ => Ok(Uploaded::Mounted),
            };
        }
        if a.status() != 202 {
            return Err(a.into_failure().await);
        }
        let mut location = a
            .location()
            .ok_or_else(|| Failure::Protocol("it started an upload without a Location".into()))?;
        let chunk = a
            .header("oci-chunk-min-length")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .map_or(CHUNK_BYTES, |n| n.clamp(CHUNK_BYTES, MAX_CHUNK_BYTES));
        drop(a);
        let reader = (blob.open)().map_err(Failure::Source)?;
        let chunked = (self.opts.chunked || blob.size > CHUNKED_ABOVE) && blob.size > 0;
        let body = if chunked {
            let mut reader = reader;
            let mut offset = 0u64;
            loop {
                let piece = read_piece(&mut reader, chunk).map_err(Failure::Source)?;
                if piece.is_empty() {
                    break;
                }
                let end = offset + piece.len() as u64 - 1;
                let range = HeaderValue::from_str(&format!("{offset}-{end}"))
                    .map_err(|e| Failure::Protocol(e.to_string()))?;
                offset = end + 1;
                let req = Request::new(Method::PATCH, location)
                    .header(header::CONTENT_TYPE, octet_stream())
                    .header(header::CONTENT_RANGE, range)
                    .body(Body::Bytes(piece.into()))
                    .authorization(&self.base, auth.clone());
                let a = self.http.send(req).await?;
                if a.status() != 202 {
                    return Err(a.into_failure().await);
                }
                location = a.location().ok_or_else(|| {
                    Failure::Protocol("it took an upload chunk without a Location".into())
                })?;
            }
            if offset != blob.size {
                return Err(Failure::Source(io::Error::other(format!(
                    "read {offset} bytes, expected {}",
                    blob.size
                ))));
            }
            Body::Empty
        } else {
            Body::Reader {
                reader,
                size: blob.size,
            }
        };
        location
            .query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let req = Request::new(Method::PUT, location)
            .header(header::CONTENT_TYPE, octet_stream())
            .body(body)
            .authorization(&self.base, auth);
        let req = if chunked {
            req.header(header::CONTENT_LENGTH, HeaderValue::from_static("0"))
        } else {
            req
        };
        let a = self.http.send(req).await?;
        if !(200..300).contains(&a.status()) {
            return Err(a.into_failure().await);
        }
        Ok(Uploaded::Sent)
    }
}

/// Up to `limit` bytes from `reader` (fewer only at its end).
fn read_piece(reader: &mut dyn Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut piece = Vec::with_capacity(usize::try_from(limit).unwrap_or(usize::MAX));
    reader.take(limit).read_to_end(&mut piece)?;
    Ok(piece)
}

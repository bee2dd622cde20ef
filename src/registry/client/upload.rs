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
//! Every attempt opens its source afresh, and the source fails its last read when the bytes
//! do not hash to the digest: nothing wrong is ever committed (the registry checks the digest
//! too).
//!
//! **Resuming** (issue 17): a chunked upload tells the blob's [`Journal`] each offset the
//! registry acknowledges, with the session's new `Location`. An upload whose journal holds an
//! earlier session (of this run's retry, or of a run that was killed) still opens with the
//! mounting `POST`; when that does not mount, it asks the registry where the earlier session
//! stands (`GET <location>`: `204` and `Range: 0-<last byte>`) and sends the rest from there,
//! reading and dropping the bytes before it from a fresh source (whose digest check still
//! sees every byte). A session the registry does not know (any other answer) is left for
//! the one the `POST` opened. Distribution 2.8 knows a session only while its stored bytes
//! are exactly those of the `Location`'s signed state: a chunk cut off mid-way (a process
//! killed, a connection broken during a `PATCH`) leaves more, and the registry then refuses
//! and cancels the session (store format §2.1).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::StreamExt;
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Url};

use super::{Client, Error, What, octet_stream};
use crate::digest::Digest;
use crate::registry::http::{Body, Failure, Request};

/// Blobs larger than this go up in chunks (`PATCH`es) rather than in one `PUT`, so that an
/// interrupted push can continue them (book: contributing/performance.md, "Resumable pushes").
pub const CHUNKED_ABOVE: u64 = 64 << 20;
/// The size of an upload chunk (raised to the registry's `OCI-Chunk-Min-Length`, up to
/// [`MAX_CHUNK_BYTES`]): what an interrupted push sends again at most, per blob in flight.
pub const CHUNK_BYTES: u64 = 16 << 20;
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
    /// Where a chunked upload of the blob stands between attempts and runs; `None`: it is
    /// not resumed.
    pub journal: Option<Box<dyn Journal + 'a>>,
}

/// The memory of a chunked upload of one blob to one repository, kept by the caller (snap
/// keeps it in the store: store format §2.1). Best effort: a journal that cannot keep
/// something only costs a resumption.
pub trait Journal: Send + Sync {
    /// The session an earlier attempt or run left: its `Location` and the bytes the
    /// registry had acknowledged.
    fn previous(&self) -> Option<(String, u64)>;
    /// The registry acknowledged `offset` bytes; the session continues at `location`.
    fn record(&self, location: &str, offset: u64);
    /// The upload is over: done, or failed in a way another run would not cure.
    fn forget(&self);
}

/// How a blob got into the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uploaded {
    /// Its bytes were sent: `bytes` of them in this run (fewer than its size when `resumed`
    /// an earlier run's session, more when a request was tried again).
    Sent {
        /// Bytes sent in this run's requests.
        bytes: u64,
        /// Whether an earlier session was continued.
        resumed: bool,
    },
    /// The registry already held it (in this repository, or in the one mounted from): no
    /// bytes were sent.
    Mounted,
}

impl Client {
    /// Uploads blobs, up to `jobs` at once, each in one or two requests, or continuing the
    /// session its journal names (see the module documentation). `from` names another
    /// repository of the same registry that may hold them (mounted from there when it does);
    /// by default the repository itself. `done` is called after each with its size and how it
    /// got there.
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
                if crate::interrupt::requested() {
                    return (
                        i,
                        Err(Error::Interrupted {
                            phase: what.phase(),
                        }),
                    );
                }
                let sent = AtomicU64::new(0);
                let r = self
                    .call(true, &what, |auth| self.upload_once(b, from, auth, &sent))
                    .await;
                if let Ok(how) = r {
                    done(b.size, how);
                }
                (i, r)
            }))
            .buffer_unordered(jobs)
            .collect(),
        );
        let mut out = vec![Uploaded::Mounted; blobs.len()];
        for (i, r) in results {
            out[i] = r?;
        }
        Ok(out)
    }

    /// One whole upload: the mounting `POST`, then (unless it mounted) one `PUT` or `PATCH`es
    /// and a closing `PUT`, from a freshly opened source; the bytes of its requests' bodies
    /// are added to `sent`.
    async fn upload_once(
        &self,
        blob: &Upload<'_>,
        from: &str,
        auth: Option<HeaderValue>,
        sent: &AtomicU64,
    ) -> Result<Uploaded, Failure> {
        let resumed = AtomicBool::new(false);
        let mut r = self
            .upload_attempt(blob, from, auth.clone(), sent, Some(&resumed))
            .await;
        // A continued session the registry then refuses (a `PATCH` out of range, a `PUT`
        // that does not add up): once more from the start, in a new session, rather than
        // failing this run and every run after it on the same record.
        if let Err(Failure::Status { status, .. }) = &r
            && resumed.load(Ordering::Relaxed)
            && matches!(status, 400 | 404 | 416)
        {
            r = self.upload_attempt(blob, from, auth, sent, None).await;
        }
        if let Some(j) = &blob.journal {
            match &r {
                // Done; or bytes that are not the blob's, which another run would read again.
                Ok(_) | Err(Failure::Source(_)) => j.forget(),
                _ => {}
            }
        }
        r
    }

    /// [`Client::upload_once`]'s attempt; `resume`: whether an earlier session may be
    /// continued, set when one is.
    async fn upload_attempt(
        &self,
        blob: &Upload<'_>,
        from: &str,
        auth: Option<HeaderValue>,
        sent: &AtomicU64,
        resume: Option<&AtomicBool>,
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
        let chunked = (self.opts.chunked || blob.size > CHUNKED_ABOVE) && blob.size > 0;
        // An earlier session of this blob the registry still holds: continue it (the one
        // the POST just opened is left to the registry's purge of idle sessions).
        let mut offset = 0u64;
        if chunked
            && let Some(resumed) = resume
            && let Some(j) = &blob.journal
            && let Some((earlier, _)) = j.previous()
            && let Some((at, acknowledged)) = self
                .session_status(&earlier, blob.size, auth.clone())
                .await?
        {
            location = at;
            offset = acknowledged;
            resumed.store(true, Ordering::Relaxed);
        }
        let resumed = offset > 0;
        let mut reader = (blob.open)().map_err(Failure::Source)?;
        let body = if chunked {
            // The bytes the registry holds are read and dropped: the source's digest check
            // needs them all.
            let skipped = io::copy(&mut (&mut reader).take(offset), &mut io::sink())
                .map_err(Failure::Source)?;
            if skipped != offset {
                return Err(Failure::Source(io::Error::other(format!(
                    "read {skipped} bytes, expected at least {offset}"
                ))));
            }
            loop {
                // Between two chunks: the session recorded is one the registry continues.
                if crate::interrupt::requested() {
                    return Err(Failure::Interrupted);
                }
                let piece = read_piece(&mut reader, chunk).map_err(Failure::Source)?;
                if piece.is_empty() {
                    break;
                }
                let end = offset + piece.len() as u64 - 1;
                let range = HeaderValue::from_str(&format!("{offset}-{end}"))
                    .map_err(|e| Failure::Protocol(e.to_string()))?;
                sent.fetch_add(piece.len() as u64, Ordering::Relaxed);
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
                offset = end + 1;
                if let Some(j) = &blob.journal {
                    j.record(location.as_str(), offset);
                }
            }
            if offset != blob.size {
                return Err(Failure::Source(io::Error::other(format!(
                    "read {offset} bytes, expected {}",
                    blob.size
                ))));
            }
            Body::Empty
        } else {
            sent.fetch_add(blob.size, Ordering::Relaxed);
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
        Ok(Uploaded::Sent {
            bytes: sent.load(Ordering::Relaxed),
            resumed,
        })
    }

    /// Where the upload session at `location` (from a journal: untrusted) stands: its current
    /// `Location` and the bytes the registry holds, or `None` when it is not a session of
    /// this registry that it still knows, with at most `size` bytes.
    async fn session_status(
        &self,
        location: &str,
        size: u64,
        auth: Option<HeaderValue>,
    ) -> Result<Option<(Url, u64)>, Failure> {
        // Only a URL of the registry itself: credentials go nowhere else.
        let Some(url) = Url::parse(location)
            .ok()
            .filter(|u| u.origin() == self.base.origin())
        else {
            return Ok(None);
        };
        let req = Request::new(Method::GET, url.clone()).authorization(&self.base, auth);
        let a = self.http.send(req).await?;
        match a.status() {
            204 => {}
            // Expired credentials, a busy registry: the caller's renewal and retries.
            s if s == 401 || crate::registry::retry::is_transient_status(s) => {
                return Err(a.into_failure().await);
            }
            // Unknown, expired or refused (distribution cancels a session whose bytes do
            // not match its state): start over.
            _ => return Ok(None),
        }
        let held = a.header("range").and_then(acknowledged);
        let at = a.location().unwrap_or(url);
        // Nothing held (or distribution's ambiguous one byte): the fresh session will do.
        Ok(held.filter(|&n| n > 0 && n <= size).map(|n| (at, n)))
    }
}

/// The bytes an upload session holds, from its `Range: 0-<last byte>` header. Distribution
/// answers `0-0` for both nothing and one byte: taken as nothing (one byte sent again).
fn acknowledged(range: &str) -> Option<u64> {
    let (first, last) = range.trim().split_once('-')?;
    let (first, last) = (first.parse::<u64>().ok()?, last.parse::<u64>().ok()?);
    match (first, last) {
        (0, 0) => Some(0),
        (0, last) => last.checked_add(1),
        _ => None,
    }
}

/// Up to `limit` bytes from `reader` (fewer only at its end).
fn read_piece(reader: &mut dyn Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut piece = Vec::with_capacity(usize::try_from(limit).unwrap_or(usize::MAX));
    reader.take(limit).read_to_end(&mut piece)?;
    Ok(piece)
}

#[cfg(test)]
mod tests {
    use super::acknowledged;

    #[test]
    fn a_session_range_says_how_many_bytes_the_registry_holds() {
        assert_eq!(acknowledged("0-16777215"), Some(16 << 20));
        assert_eq!(
            acknowledged(" 0-0 "),
            Some(0),
            "nothing, or one byte: nothing"
        );
        for bad in [
            "",
            "0-",
            "-5",
            "1-5",
            "0-x",
            "bytes=0-5",
            "0-18446744073709551615",
        ] {
            assert_eq!(acknowledged(bad), None, "{bad}");
        }
    }
}

//! Listing a repository's tags, page by page, within bounds.

use reqwest::Method;
use reqwest::header::{self, HeaderValue};

use super::failures::one_line;
use super::{Client, What};
use crate::registry::http::Request;
use crate::registry::{Error, tags};

impl Client {
    /// Every tag of the repository, in the order the registry lists them: pages of
    /// [`tags::TAG_PAGE_SIZE`], each read through [`tags::MAX_TAG_PAGE_BYTES`], at most
    /// [`tags::MAX_TAG_PAGES`] of them, following `Link: <…>; rel="next"` on the registry's
    /// own origin only.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a repository the registry does not know,
    /// [`Error::ResponseTooLarge`] past a bound, [`Error::Protocol`] for a page that is not a
    /// tag list or a link elsewhere, a classified [`Error`] otherwise.
    pub fn list_tags(&self) -> Result<Vec<String>, Error> {
        self.rt.block_on(self.list_tags_async())
    }

    pub(super) async fn list_tags_async(&self) -> Result<Vec<String>, Error> {
        let protocol = |reason: String| Error::Protocol {
            registry: self.remote.registry.clone(),
            reason,
        };
        let what = What::new("listing", format!("the tags of {}", self.remote.repository));
        let mut next = Some(self.url(&format!("tags/list?n={}", tags::TAG_PAGE_SIZE))?);
        let mut all = Vec::new();
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > tags::MAX_TAG_PAGES {
                return Err(Error::ResponseTooLarge {
                    registry: self.remote.registry.clone(),
                    what: format!("{} (more than {} pages)", what.thing, tags::MAX_TAG_PAGES),
                    limit: tags::MAX_TAG_PAGES as u64 * tags::MAX_TAG_PAGE_BYTES,
                    declared: None,
                });
            }
            let url = &url;
            let (body, link) = self
                .call(false, &what, |auth| async move {
                    let req = Request::new(Method::GET, url.clone())
                        .header(header::ACCEPT, HeaderValue::from_static("application/json"))
                        .authorization(&self.base, auth);
                    let a = self.http.send(req).await?;
                    if a.status() != 200 {
                        return Err(a.into_failure().await);
                    }
                    let link = a.header("link").map(str::to_owned);
                    let answered = a.url().clone();
                    Ok((
                        a.read_bounded(tags::MAX_TAG_PAGE_BYTES).await?,
                        link.map(|l| (l, answered)),
                    ))
                })
                .await?;
            all.extend(tags::parse_page(&body).map_err(protocol)?);
            if let Some((link, answered)) = link
                && let Some(target) = tags::next_link(&link)
            {
                let target = answered.join(target).map_err(|_| {
                    protocol(format!("its next page `{}` is not a URL", one_line(target)))
                })?;
                // Credentials go only to the registry's origin: a page elsewhere is refused.
                if target.origin() != self.base.origin() {
                    return Err(protocol(format!(
                        "its next page of tags is on another server ({})",
                        one_line(target.as_str())
                    )));
                }
                next = Some(target);
            }
        }
        Ok(all)
    }
}

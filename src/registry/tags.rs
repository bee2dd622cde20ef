//! The tag list endpoint's wire format: `GET /v2/<name>/tags/list?n=<page>` answers
//! `{"name": "<name>", "tags": ["v1", …]}`, and a `Link: <url>; rel="next"` header when there
//! is more (distribution spec, "Listing Tags").
//!
//! Pure parsing, no I/O: [`super::Client::list_tags`] reads each page through
//! [`MAX_TAG_PAGE_BYTES`] and follows at most [`MAX_TAG_PAGES`] pages. A tag that is not
//! valid by the distribution grammar is refused here, so no bad tag reaches a URL or a
//! message unchecked.

use super::reference::is_valid_tag;

/// Tags asked for per page (`?n=`). Registries may answer with fewer, never more.
pub const TAG_PAGE_SIZE: usize = 1000;
/// The most bytes snap reads of one page of the tag list (1000 tags of 128 bytes, quoted,
/// fit in well under this).
pub const MAX_TAG_PAGE_BYTES: u64 = 1 << 20;
/// The most pages snap follows: at most `MAX_TAG_PAGES × MAX_TAG_PAGE_BYTES` read in all.
pub const MAX_TAG_PAGES: usize = 64;

/// One page of the tag list.
#[derive(Debug, serde::Deserialize)]
struct Page {
    /// `null` for an empty repository on some registries.
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The tags of one page, in the order the registry sent them.
///
/// # Errors
/// A sentence saying what is wrong with the page (not JSON, a tag outside the grammar).
pub fn parse_page(body: &[u8]) -> Result<Vec<String>, String> {
    let page: Page =
        serde_json::from_slice(body).map_err(|e| format!("its tag list is not JSON: {e}"))?;
    let tags = page.tags.unwrap_or_default();
    if let Some(bad) = tags.iter().find(|t| !is_valid_tag(t)) {
        return Err(format!(
            "its tag list holds `{}`, which is not a tag",
            bad.escape_default()
        ));
    }
    Ok(tags)
}

/// The target of a `Link` header's `rel="next"` entry, as written (relative or absolute).
#[must_use]
pub fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|entry| {
        let (target, params) = entry.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim().trim_matches('"').split(' ').any(|r| r == "next")
            })
            .then_some(target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_lists_its_tags_and_null_is_none() {
        assert_eq!(
            parse_page(br#"{"name":"a/b","tags":["v1","latest"]}"#),
            Ok(vec!["v1".to_owned(), "latest".to_owned()])
        );
        assert_eq!(parse_page(br#"{"name":"a/b","tags":null}"#), Ok(vec![]));
        assert_eq!(parse_page(br#"{"name":"a/b"}"#), Ok(vec![]));
    }

    #[test]
    fn a_tag_outside_the_grammar_is_refused() {
        let e = parse_page(br#"{"tags":["../x"]}"#).expect_err("not a tag");
        assert!(e.contains("`../x`"), "{e}");
        assert!(parse_page(b"<html>").is_err(), "not JSON");
    }

    #[test]
    fn the_next_link_is_found_among_others() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=v1&n=2>; rel="next""#),
            Some("/v2/a/tags/list?last=v1&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#),
            Some("https://x/next")
        );
        assert_eq!(next_link(r#"</v2/a/tags/list>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }
}

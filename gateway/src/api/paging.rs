//! The one paging helper behind every list (webhooks, actions, responses, attempts): Grafana
//! OnCall's page-number pagination (`common/api_helpers/paginators.py`) and its envelope.
//!
//! OnCall's rules: `perpage` sets the page size (default 50; here at most 100), an unusable value
//! falls back to the default; an unusable or non-positive `page` is page 1; a page past the end
//! answers the last page. The gateway's own `page_size` keeps its documented strict behaviour
//! (1-100, else 400 naming it). Links are `{public_url}{path}?{query}` with the request's query
//! kept and `page` replaced, keys sorted, as Django REST framework builds them (the previous link
//! of page 2 drops `page`); with an empty `public_url` they are relative. The `Host` header is
//! never used.

use std::collections::BTreeMap;
use std::future::Future;

use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use crate::store::{Page, StoreResult};

/// OnCall's `FiftyPageSizePaginator` default.
pub const DEFAULT_SIZE: u64 = 50;
/// OnCall's `max_page_size`.
pub const MAX_SIZE: u64 = 100;
/// Highest page number read (higher ones are this one: past the end anyway).
pub const MAX_PAGE: u64 = 1_000_000;

/// A list request's paging, read from its raw query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Requested page (1-based), after OnCall's fallbacks.
    pub page: u64,
    pub size: u64,
    /// The query's pairs, for the links.
    query: BTreeMap<String, Vec<String>>,
}

fn pairs(raw: Option<&str>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

impl PageRequest {
    /// Reads `page`, `perpage` (OnCall, lenient) and `page_size` (the gateway's, strict).
    pub fn parse(raw_query: Option<&str>) -> ApiResult<PageRequest> {
        let query = pairs(raw_query);
        let last = |k: &str| query.get(k).and_then(|v| v.last()).map(String::as_str);
        let page = last("page")
            .and_then(|p| p.trim().parse::<i64>().ok())
            .filter(|p| *p >= 1)
            // Past the end answers the last page anyway; the cap keeps the offset far from
            // overflowing (a fuzzer's page=9223372036854775807).
            .map_or(1, |p| (p as u64).min(MAX_PAGE));
        let size = match (last("perpage"), last("page_size")) {
            (Some(p), _) => p
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|p| *p >= 1)
                .map_or(DEFAULT_SIZE, |p| (p as u64).min(MAX_SIZE)),
            (None, Some(p)) => p
                .parse::<u64>()
                .ok()
                .filter(|p| (1..=MAX_SIZE).contains(p))
                .ok_or_else(|| ApiError::field("page_size", "must be between 1 and 100"))?,
            (None, None) => DEFAULT_SIZE,
        };
        Ok(PageRequest { page, size, query })
    }

    fn offset_of(&self, page: u64) -> u64 {
        (page - 1).saturating_mul(self.size)
    }

    /// Fetches the requested page; past the end, the last page (OnCall). Returns the page
    /// number answered and the store's page.
    pub async fn fetch<T, F, Fut>(&self, fetch: F) -> ApiResult<(u64, Page<T>)>
    where
        F: Fn(u64, u64) -> Fut,
        Fut: Future<Output = StoreResult<Page<T>>>,
    {
        let found = fetch(self.offset_of(self.page), self.size).await?;
        let last = total_pages(found.total, self.size);
        if self.page > last {
            return Ok((last, fetch(self.offset_of(last), self.size).await?));
        }
        Ok((self.page, found))
    }

    /// A link to `page` of `path`, keeping the request's other query parameters.
    fn link(&self, public_url: &str, path: &str, page: Option<u64>) -> String {
        let mut q = self.query.clone();
        match page {
            Some(p) => {
                q.insert("page".into(), vec![p.to_string()]);
            }
            None => {
                q.remove("page");
            }
        }
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, vs) in &q {
            for v in vs {
                s.append_pair(k, v);
            }
        }
        let query = s.finish();
        let base = public_url.trim_end_matches('/');
        if query.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{query}")
        }
    }

    /// OnCall's envelope for the page `page` (as answered by [`PageRequest::fetch`]).
    pub fn envelope(
        &self,
        public_url: &str,
        path: &str,
        page: u64,
        total: u64,
        results: Vec<Value>,
    ) -> Value {
        let pages = total_pages(total, self.size);
        let next = (page < pages).then(|| self.link(public_url, path, Some(page + 1)));
        let previous = match page {
            1 => None,
            2 => Some(self.link(public_url, path, None)),
            p => Some(self.link(public_url, path, Some(p - 1))),
        };
        json!({
            "count": total,
            "next": next,
            "previous": previous,
            "results": results,
            "page_size": self.size,
            "current_page_number": page,
            "total_pages": pages,
        })
    }
}

/// Django's `num_pages`: at least 1 (an empty list has one empty page).
pub fn total_pages(total: u64, size: u64) -> u64 {
    total.div_ceil(size.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(q: &str) -> PageRequest {
        PageRequest::parse(Some(q)).unwrap()
    }

    #[test]
    fn oncall_fallbacks() {
        assert_eq!((req("").page, req("").size), (1, 50));
        assert_eq!(req("page=abc").page, 1);
        assert_eq!(req("page=0").page, 1);
        assert_eq!(req("page=-3").page, 1);
        assert_eq!(req("page=4").page, 4);
        assert_eq!(req("perpage=7").size, 7);
        assert_eq!(req("perpage=x").size, 50);
        assert_eq!(req("perpage=0").size, 50);
        assert_eq!(req("perpage=500").size, 100);
        assert_eq!(req("page_size=20").size, 20);
        assert_eq!(req("perpage=3&page_size=1000").size, 3);
        let e = PageRequest::parse(Some("page_size=1000")).unwrap_err();
        assert!(matches!(e, ApiError::Invalid { field: Some(f), .. } if f == "page_size"));
    }

    #[test]
    fn links_keep_the_query_sorted_and_replace_page() {
        let r = req("perpage=1&name=a+b&page=2");
        let env = r.envelope("https://gw.example.com/", "/api/v1/webhooks/", 2, 3, vec![]);
        assert_eq!(
            env["next"],
            "https://gw.example.com/api/v1/webhooks/?name=a+b&page=3&perpage=1"
        );
        // DRF drops `page` from the link back to page 1.
        assert_eq!(
            env["previous"],
            "https://gw.example.com/api/v1/webhooks/?name=a+b&perpage=1"
        );
        let env = req("").envelope("", "/api/v1/actions/", 1, 120, vec![]);
        assert_eq!(env["next"], "/api/v1/actions/?page=2");
        assert_eq!(env["previous"], Value::Null);
        assert_eq!(env["total_pages"], 3);
        let empty = req("").envelope("", "/x", 1, 0, vec![]);
        assert_eq!(
            (empty["total_pages"].as_u64(), empty["next"].is_null()),
            (Some(1), true)
        );
    }

    #[tokio::test]
    async fn past_the_end_answers_the_last_page() {
        let data: Vec<u64> = (0..5).collect();
        let fetch = |offset: u64, limit: u64| {
            let items = data
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .copied()
                .collect();
            async move { Ok(Page { items, total: 5 }) }
        };
        let (page, got) = req("page=9&perpage=2").fetch(fetch).await.unwrap();
        assert_eq!((page, got.items), (3, vec![4]));
        let (page, got) = req("page=2&perpage=2").fetch(fetch).await.unwrap();
        assert_eq!((page, got.items), (2, vec![2, 3]));
    }
}

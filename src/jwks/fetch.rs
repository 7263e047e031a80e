//! One conditional `GET` of a JWKS URL through the SSRF-guarded outbound client: the URL judged
//! first, `If-None-Match` sent, bounded in time and body size. Knows HTTP, not keys.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CACHE_CONTROL, ETAG, HeaderValue, IF_NONE_MATCH};
use url::Url;

use crate::net::client::{GuardedClient, error_chain};
use crate::net::guard::SsrfError;

/// What the server answered.
#[derive(Debug)]
pub enum Fetched {
    /// `304`: the set we hold is current.
    NotModified {
        /// The response's `Cache-Control`, all values joined.
        cache_control: Option<String>,
    },
    /// `200` with a body of at most the allowed size.
    Body {
        /// The body bytes.
        body: Vec<u8>,
        /// The response's `ETag`, to send back as `If-None-Match`.
        etag: Option<HeaderValue>,
        /// The response's `Cache-Control`, all values joined.
        cache_control: Option<String>,
    },
}

/// Why a fetch failed. The text names no key material; URLs are left out of reqwest errors.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The SSRF guard refused the URL before dialing.
    #[error(transparent)]
    Blocked(#[from] SsrfError),
    /// DNS, connect, TLS or read failure (a refused resolver answer included).
    #[error("network: {0}")]
    Network(String),
    /// Any status but 200 and 304 (redirects are not followed).
    #[error("server answered {0}")]
    Status(u16),
    /// The body exceeded the limit.
    #[error("body is larger than {0} bytes")]
    TooLarge(usize),
    /// No complete answer within the timeout.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
}

/// `GET url` with `If-None-Match: etag` when given; the whole exchange within `timeout`, at most
/// `max_body` bytes read.
pub async fn fetch(
    client: &GuardedClient,
    url: &Url,
    etag: Option<&HeaderValue>,
    timeout: Duration,
    max_body: usize,
) -> Result<Fetched, FetchError> {
    // reqwest dials IP literals without the resolver: judge the URL before every request.
    let url = client.guard.check_url(url.as_str())?;
    let mut request = client
        .client
        .get(url)
        .header(ACCEPT, "application/jwk-set+json, application/json");
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag.clone());
    }
    let exchange = async {
        let response = request.send().await.map_err(network)?;
        let cache_control = joined(response.headers().get_all(CACHE_CONTROL));
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(Fetched::NotModified { cache_control }),
            StatusCode::OK => {
                let etag = response.headers().get(ETAG).cloned();
                let body = read_capped(response, max_body).await?;
                Ok(Fetched::Body {
                    body,
                    etag,
                    cache_control,
                })
            }
            other => Err(FetchError::Status(other.as_u16())),
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(FetchError::Timeout(timeout)))
}

fn network(e: reqwest::Error) -> FetchError {
    FetchError::Network(error_chain(&e.without_url()))
}

/// Every value of a header, joined by `", "` (RFC 9110 §5.3); `None` when absent or not text.
fn joined(values: reqwest::header::GetAll<'_, HeaderValue>) -> Option<String> {
    let parts: Vec<&str> = values.iter().filter_map(|v| v.to_str().ok()).collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The body, refusing it as soon as it is known to exceed `max` (dropping the response closes
/// the connection instead of draining the rest).
async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, FetchError> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(FetchError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(network)? {
        if body.len() + chunk.len() > max {
            return Err(FetchError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

//! How a request to a provider's API is authorized: the credentials scheme (bearer token, a
//! bearer access token obtained with the key, or HTTP Basic with the key as user name) and the
//! one header that carries the API version or a fixed media type. Each provider states its
//! [`ApiAuth`] in its `INFO` ([`super::info::Api::auth`]); `Provider::authorize` applies it to
//! every API request the fetcher makes, written once here.

use super::{AccessToken, ParseError, TokenRequest};

/// A provider's API authorization.
#[derive(Debug, Clone, Copy)]
pub struct ApiAuth {
    pub credentials: Credentials,
    /// The header sent with every request, if any.
    pub header: Option<Header>,
}

/// How the connection's key (or the access token obtained with it) is sent.
#[derive(Debug, Clone, Copy)]
pub enum Credentials {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `Authorization: Bearer <token>` with a short-lived token the key obtains
    /// (`Provider::token_request`).
    AccessToken(Tokens),
    /// HTTP Basic with the key as user name and this password.
    Basic { password: &'static str },
}

/// How a connection's key obtains an access token: `Provider::token_request` and
/// `Provider::parse_token`.
#[derive(Debug, Clone, Copy)]
pub struct Tokens {
    pub request: fn(&str) -> Option<TokenRequest>,
    pub parse: fn(&[u8]) -> Result<AccessToken, ParseError>,
}

/// A header sent with every API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub name: &'static str,
    pub value: HeaderValue,
}

/// What a [`Header`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue {
    /// The connection's API version after `prefix`; the header is left out for the versions
    /// in `unsent` (a provider that takes no header for its default).
    Version {
        prefix: &'static str,
        unsent: &'static [&'static str],
    },
    /// The same value whatever the version (the API is unversioned).
    Fixed(&'static str),
}

impl Header {
    /// `name: <version>`, always sent.
    pub const fn version(name: &'static str) -> Header {
        Header::version_unless(name, &[])
    }

    /// `name: <version>`, left out for the versions in `unsent`.
    pub const fn version_unless(name: &'static str, unsent: &'static [&'static str]) -> Header {
        let value = HeaderValue::Version { prefix: "", unsent };
        Header { name, value }
    }

    /// `name: <prefix><version>`, always sent.
    pub const fn prefixed_version(name: &'static str, prefix: &'static str) -> Header {
        let value = HeaderValue::Version {
            prefix,
            unsent: &[],
        };
        Header { name, value }
    }

    /// `name: <value>` whatever the version.
    pub const fn fixed(name: &'static str, value: &'static str) -> Header {
        let value = HeaderValue::Fixed(value);
        Header { name, value }
    }
}

impl ApiAuth {
    /// A bearer token, and `header` when there is one.
    pub const fn bearer(header: Option<Header>) -> ApiAuth {
        let credentials = Credentials::Bearer;
        ApiAuth {
            credentials,
            header,
        }
    }

    /// A bearer access token obtained with the key as `tokens` says, and `header` when there
    /// is one.
    pub const fn access_token(tokens: Tokens, header: Option<Header>) -> ApiAuth {
        let credentials = Credentials::AccessToken(tokens);
        ApiAuth {
            credentials,
            header,
        }
    }

    /// HTTP Basic with the key as user name and `password`, and `header` when there is one.
    pub const fn basic(password: &'static str, header: Option<Header>) -> ApiAuth {
        let credentials = Credentials::Basic { password };
        ApiAuth {
            credentials,
            header,
        }
    }
}

impl ApiAuth {
    /// Adds the credentials and the header to `request`. `api_key` is the connection's key or
    /// the access token obtained with it; `api_version` the connection's API version.
    pub fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        api_key: &str,
        api_version: &str,
    ) -> reqwest::RequestBuilder {
        let request = match self.credentials {
            Credentials::Bearer | Credentials::AccessToken(_) => request.bearer_auth(api_key),
            Credentials::Basic { password } => request.basic_auth(api_key, Some(password)),
        };
        let Some(Header { name, value }) = self.header else {
            return request;
        };
        match value {
            HeaderValue::Version { unsent, .. } if unsent.contains(&api_version) => request,
            HeaderValue::Version { prefix, .. } => {
                request.header(name, format!("{prefix}{api_version}"))
            }
            HeaderValue::Fixed(fixed) => request.header(name, fixed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{chargebee, maxio, recurly, stripe, zuora};

    /// The headers `auth` sends for key `key_1`, as `name: value` lines.
    fn headers(auth: ApiAuth, version: &str) -> String {
        let request = auth.authorize(
            reqwest::Client::new().get("http://localhost/x"),
            "key_1",
            version,
        );
        let built = request.build().expect("a valid request");
        let lines: Vec<String> = built
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or_default()))
            .collect();
        lines.join("\n")
    }

    /// Each scheme as a provider uses it (`a2V5XzE6eA==` is base64 of `key_1:x`, `a2V5XzE6`
    /// of `key_1:`).
    #[test]
    fn every_scheme_sends_its_credentials_and_header() {
        let cases = [
            (
                stripe::INFO,
                "2024-06-20",
                "authorization: Bearer key_1\nstripe-version: 2024-06-20",
            ),
            (
                maxio::INFO,
                "v1",
                "authorization: Basic a2V5XzE6eA==\naccept: application/json",
            ),
            (
                recurly::INFO,
                "v2021-02-25",
                "authorization: Basic a2V5XzE6\naccept: application/vnd.recurly.v2021-02-25",
            ),
            (chargebee::INFO, "v2", "authorization: Basic a2V5XzE6"),
            // Zuora sends no version header for its default version.
            (zuora::INFO, "v1", "authorization: Bearer key_1"),
            (zuora::INFO, "", "authorization: Bearer key_1"),
            (
                zuora::INFO,
                "2025-01-01",
                "authorization: Bearer key_1\nzuora-version: 2025-01-01",
            ),
        ];
        for (info, version, expected) in cases {
            assert_eq!(headers(info.api.auth, version), expected, "{:?}", info.kind);
        }
    }
}

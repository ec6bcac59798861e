//! How a request to a provider's API is authorized: the credentials scheme (bearer token or
//! HTTP Basic with the key as user name) and the one header that carries the API version or a
//! fixed media type. Each provider states its [`ApiAuth`] in its `INFO`
//! ([`super::info::Api::auth`]); `Provider::authorize` applies it to every API request the
//! fetcher makes, written once here.

/// A provider's API authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiAuth {
    pub credentials: Credentials,
    /// The header sent with every request, if any.
    pub header: Option<Header>,
}

/// How the connection's key (or the access token obtained with it) is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// HTTP Basic with the key as user name and this password.
    Basic { password: &'static str },
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
        Header {
            name,
            value: HeaderValue::Version {
                prefix: "",
                unsent: &[],
            },
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
            Credentials::Bearer => request.bearer_auth(api_key),
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

    fn headers(auth: ApiAuth, version: &str) -> Vec<(String, String)> {
        let request = auth.authorize(
            reqwest::Client::new().get("http://localhost/x"),
            "key_1",
            version,
        );
        let built = request.build().expect("a valid request");
        built
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect()
    }

    #[test]
    fn bearer_with_a_version_header_sends_both() {
        assert_eq!(
            headers(stripe::INFO.api.auth, "2024-06-20"),
            [
                ("authorization".to_owned(), "Bearer key_1".to_owned()),
                ("stripe-version".to_owned(), "2024-06-20".to_owned()),
            ]
        );
    }

    #[test]
    fn a_version_the_provider_takes_no_header_for_is_left_out() {
        let auth = zuora::INFO.api.auth;
        assert_eq!(headers(auth, "v1").len(), 1);
        assert_eq!(headers(auth, "").len(), 1);
        assert_eq!(headers(auth, "2025-01-01")[1].1, "2025-01-01");
    }

    #[test]
    fn basic_uses_the_key_as_user_name_with_the_fixed_password() {
        // base64("key_1:x") and base64("key_1:").
        assert_eq!(
            headers(maxio::INFO.api.auth, "v1"),
            [
                ("authorization".to_owned(), "Basic a2V5XzE6eA==".to_owned()),
                ("accept".to_owned(), "application/json".to_owned()),
            ]
        );
        assert_eq!(
            headers(recurly::INFO.api.auth, "v2021-02-25"),
            [
                ("authorization".to_owned(), "Basic a2V5XzE6".to_owned()),
                (
                    "accept".to_owned(),
                    "application/vnd.recurly.v2021-02-25".to_owned()
                ),
            ]
        );
        assert_eq!(headers(chargebee::INFO.api.auth, "v2").len(), 1);
    }
}

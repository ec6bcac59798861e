//! The archive's S3 bucket, through the AWS SDK (region, credentials and endpoint from the
//! standard AWS environment, `crate::aws_env`): write an object only if its key is new, read
//! one, list a prefix. With `AWS_ENDPOINT_URL` set (moto in the tests, an S3-compatible store)
//! requests use path-style addressing, since such endpoints have no per-bucket host names.

use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::ArchiveError;

/// Time for one attempt of one request: data files are up to ~64 MiB.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The bucket and the client that reaches it.
#[derive(Clone)]
pub struct Bucket {
    client: Client,
    name: String,
}

/// The outcome of a write that must not replace anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Stored, as this S3 version (`None` on an unversioned bucket).
    New { version_id: Option<String> },
    /// Something is already stored under the key; nothing was written.
    Exists,
}

impl Bucket {
    pub async fn connect(name: &str) -> Bucket {
        let sdk = crate::aws_env::load(ATTEMPT_TIMEOUT).await;
        let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .build();
        Bucket {
            client: Client::from_conf(config),
            name: name.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn failed<E>(
        &self,
        op: &'static str,
        key: &str,
        e: aws_sdk_s3::error::SdkError<E>,
    ) -> ArchiveError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        ArchiveError::S3 {
            op,
            location: format!("s3://{}/{key}", self.name),
            cause: DisplayErrorContext(e).to_string(),
        }
    }

    /// Writes `bytes` under `key` unless the key exists (`If-None-Match: *`), so two writers
    /// can never both write the same manifest: one gets [`Written::Exists`].
    pub async fn put_new(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Written, ArchiveError> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .if_none_match("*")
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Written::New {
                version_id: out.version_id().map(str::to_owned),
            }),
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) =>
            {
                Ok(Written::Exists)
            }
            Err(e) => Err(self.failed("write", key, e)),
        }
    }

    /// The current version's bytes under `key`; `None` when there is none (never written, or
    /// deleted).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let got = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await;
        match got {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| ArchiveError::S3 {
                    op: "read",
                    location: format!("s3://{}/{key}", self.name),
                    cause: e.to_string(),
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.failed("read", key, e)),
        }
    }

    /// Every key under `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed("list", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys.sort();
        Ok(keys)
    }
}

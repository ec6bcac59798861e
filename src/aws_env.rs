//! The AWS environment every AWS client of billsync starts from (the SQS intake,
//! `crate::intake_sink::sqs`, and the raw archive's S3 bucket, `crate::archive::bucket`):
//! region, credentials and `AWS_ENDPOINT_URL` from the standard AWS loader, over rustls with the
//! ring provider like every other client here (the SDK's default TLS, aws-lc-rs, needs cmake).

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// The shared AWS configuration, with a 5 s connect timeout and `attempt_timeout` per attempt
/// of an operation.
pub async fn load(attempt_timeout: Duration) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(attempt_timeout)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        .load()
        .await
}

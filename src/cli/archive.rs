//! `billsync archive` (one pass now: adopt, archive closed partitions, trim past the hot
//! window) and `billsync archive verify` (walk the manifest chain, re-hash every file), on the
//! configured store and bucket (docs/archive.md).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use billsync::archive::pass::Hold;
use billsync::archive::{Archive, ArchiveSettings};
use billsync::config::Config;

#[derive(clap::Args)]
pub struct ArchiveArgs {
    #[command(subcommand)]
    command: Option<ArchiveCommand>,
    /// Test only: wait this many seconds between a segment's writes to S3 and its record in
    /// the database (the crash tests kill the process there).
    #[arg(long, hide = true)]
    hold_after_upload: Option<u64>,
}

#[derive(clap::Subcommand)]
enum ArchiveCommand {
    /// Walk the manifest chain and re-hash every archived file; exits 1 when anything is
    /// missing, modified, out of the chain or archived twice.
    Verify,
}

pub async fn run(config: Config, args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    let settings = ArchiveSettings::from_config(&config).context(
        "no archive bucket: set BILLSYNC_ARCHIVE_BUCKET (or archive_bucket) to the S3 bucket \
         to archive raw events to",
    )?;
    let bucket = settings.bucket.clone();
    let store = super::node::open_store(&config).await?;
    let archive = Archive::connect(store, settings).await;
    match args.command {
        None => {
            let hold = Hold {
                after_upload: args.hold_after_upload.map(Duration::from_secs),
            };
            let report = archive
                .run_pass(&super::node::cli_actor(), hold)
                .await
                .with_context(|| format!("the archive pass to s3://{bucket} failed"))?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Some(ArchiveCommand::Verify) => {
            let mut err = std::io::stderr();
            let report = archive
                .verify(|done, total| {
                    if total > 0 {
                        let _ = write!(err, "\rverifying manifests: {done}/{total}");
                        if done == total {
                            let _ = writeln!(err);
                        }
                    }
                })
                .await
                .with_context(|| format!("cannot verify the archive in s3://{bucket}"))?;
            for problem in &report.problems {
                println!("{problem}");
            }
            println!(
                "{} manifests, {} files, {} events, {} bytes verified; {} problems",
                report.manifests,
                report.files,
                report.events,
                report.bytes,
                report.problems.len()
            );
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

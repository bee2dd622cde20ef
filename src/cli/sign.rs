//! `snap sign SNAP [--key FILE]` and `snap verify SNAP [--allowed-signers FILE]`.

use std::path::PathBuf;

use snap::ops::sign::SignatureCheckResult as Check;
use snap::ops::{self, SignOptions, VerifyOptions};

use crate::cli::Context;
use crate::cli::error::ExitStatus;

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// The snapshot to sign.
    #[arg(value_name = "SNAP", default_value = "latest")]
    rev: String,
    /// The SSH private key (OpenSSH format, unencrypted); default: the `sign.key` setting.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The snapshot to verify.
    #[arg(value_name = "SNAP", default_value = "latest")]
    rev: String,
    /// Who may sign (ssh-keygen's allowed-signers format); default: the
    /// `verify.allowed-signers` setting.
    #[arg(long, value_name = "FILE")]
    allowed_signers: Option<PathBuf>,
}

pub fn sign(ctx: &Context, args: &SignArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let out = ops::sign(
        &store,
        &SignOptions {
            rev: args.rev.clone(),
            key: args.key.clone(),
        },
    )?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
    } else {
        ctx.printer.status(
            "Signed",
            format!(
                "{} with {} ({})",
                out.subject,
                out.key,
                out.signature.short()
            ),
        );
        ctx.printer.line(out.signature)?;
    }
    Ok(ExitStatus::Success)
}

pub fn verify(ctx: &Context, args: &VerifyArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let report = ops::verify(
        &store,
        &VerifyOptions {
            rev: args.rev.clone(),
            allowed_signers: args.allowed_signers.clone(),
        },
    )?;
    for (line, why) in &report.skipped {
        ctx.printer
            .status("Skipped", format!("allowed signers line {line}: {why}"));
    }
    if ctx.printer.json() {
        ctx.printer.json_value(&report)?;
    } else {
        for s in &report.signatures {
            let key = s.key.as_deref().unwrap_or("unreadable key");
            let text = match &s.check {
                Check::Good { principal } => format!("good signature by {principal} ({key})"),
                Check::UnknownKey => format!("signature by {key}, which is not an allowed signer"),
                Check::Bad { reason } => format!("bad signature: {reason}"),
            };
            ctx.printer.line(format!("{} {text}", s.digest.short()))?;
        }
    }
    if report.verified {
        ctx.printer
            .status("Verified", format!("{}", report.subject));
        Ok(ExitStatus::Success)
    } else {
        ctx.printer.error(format!(
            "{} is not signed by an allowed signer: {}",
            report.subject,
            report.reason()
        ));
        ctx.printer.error_detail(
            "hint",
            "sign it with `snap sign SNAP --key KEY`, or add the signer's key to the allowed signers",
        );
        ctx.printer
            .error_detail("  see", crate::cli::error::see("unverified"));
        Ok(ExitStatus::Negative)
    }
}

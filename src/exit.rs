//! The process exit codes, a contract with the automation that runs catalyst-bootstrap.
//! README.md carries the same table.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything asked for was done.
    Success = 0,
    /// A bug or an environment fault the other codes do not cover (e.g. an output
    /// directory that cannot be written).
    Internal = 1,
    /// The command line was wrong: unknown flag, missing argument (clap's own code).
    Usage = 2,
    /// The spec or defaults file is missing, empty, unparseable or invalid. Nothing was
    /// written to stdout or to the output directory.
    BadInput = 3,
    /// A workload failed: crash loop, image pull error, failed HelmRelease.
    WorkloadFailed = 4,
    /// A wait ran out of time without a clearer cause.
    TimedOut = 5,
    /// The Kubernetes apiserver could not be reached, or kept refusing or throttling.
    ApiserverUnreachable = 6,
    /// The workloads are healthy but the DNS records are not (yet) in PowerDNS.
    DnsNotSynced = 7,
    /// The apiserver refused an action for lack of permission (HTTP 401/403).
    PermissionDenied = 8,
    /// The server's TLS certificate was not trusted: wrong certificate authority, wrong
    /// host name, or expired. Retrying cannot fix it; the kubeconfig (or the server) must.
    TlsUntrusted = 9,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

//! A PowerDNS webhook for external-dns's `webhook` provider, as
//! tests/world/support/pdns_webhook.rs describes: the world's kubelet runs it for the kit's
//! webhook sidecar image. Configured by the sidecar's environment (`PDNS_API_URL`,
//! `PDNS_SERVER_ID`, `PDNS_API_KEY`, `WEBHOOK_PORT`); runs until killed.

#[path = "../tests/world/support/pdns_webhook.rs"]
mod pdns_webhook;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match pdns_webhook::Config::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            pdns_webhook::log("fatal", &e);
            std::process::exit(1);
        }
    };
    if let Err(e) = pdns_webhook::run(config).await {
        pdns_webhook::log("fatal", &e);
        std::process::exit(1);
    }
}

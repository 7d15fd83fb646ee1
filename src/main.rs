use anyhow::Context;
use seatstorm::app::App;
use seatstorm::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

// glibc's malloc and free were a fifth of the server's CPU under a booking storm (docs/profiling.md):
// every request allocates and frees many small objects from many threads.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: seatstorm [serve | schema]
  serve   run the server (default); configured by environment variables, see README
  schema  print the GraphQL SDL (what schema.graphql holds)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => serve().await,
        Some("schema") => {
            print!("{}", seatstorm::schema::sdl());
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}\n{USAGE}"),
    }
}

async fn serve() -> anyhow::Result<()> {
    // A missing .env is normal; a malformed one is worth knowing about.
    let dotenv = dotenvy::dotenv();
    let config = Config::from_env().context("invalid configuration")?;
    init_tracing(config.log_format);
    if let Err(err) = dotenv {
        if !err.not_found() {
            tracing::warn!(error = %err, "ignoring unreadable .env file");
        }
    }
    if config.jwt_secret_generated {
        tracing::warn!(
            "JWT_SECRET is not set: generated one for this run, so tokens will not survive a restart"
        );
    }
    App::build(config).await?.run_until_stopped().await
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
}

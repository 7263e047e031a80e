//! The command line (SPEC §7): each subcommand is one library call.
// What the subcommands print is their interface (operators and scripts read it); the daemon
// itself only logs.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::decision::{Mode, OwnedRequest};
use crate::keys::{self, KeyAlg};
use crate::policy;
use crate::setup;

/// usher decides who may watch a stream (MistServer USER_NEW trigger handler).
#[derive(Debug, Parser)]
#[command(name = "usher", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, default_value = "config.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands; no subcommand means `serve`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve,
    /// Print every problem in the config; exit 0 only when there is none.
    CheckConfig,
    /// Make a key: DIR/K.key.pem (0600), DIR/K.pub.pem, DIR/K.jwk.json; for HS* DIR/K.secret and
    /// DIR/K.jwk.json (the oct JWK `PUT /v1/keys` takes), both 0600.
    Keygen {
        #[arg(long)]
        kid: String,
        /// ES256, ES384, EdDSA, RS256/384/512, PS256/384/512 or HS256/384/512.
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// RSA only: 2048 (default), 3072 or 4096.
        #[arg(long)]
        bits: Option<u32>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a signed token (for tests and for checking setups).
    Sign(SignArgs),
    /// Register usher's USER_NEW (blocking, default "false") and USER_END triggers in MistServer.
    MistSetup {
        /// MistServer's API (default: `[mist] api_url`).
        #[arg(long)]
        api: Option<String>,
        /// The handler URL MistServer should call (default: from `[trigger] listen`).
        #[arg(long)]
        handler: Option<String>,
        /// Also register PUSH_REWRITE (blocking, default "false"; STREAM_PUSH is always
        /// registered). Only for setups that need it: it fires on every push.
        #[arg(long)]
        push_rewrite: bool,
    },
    /// Show what the running daemon is doing: decisions/s, top deny reasons over the last
    /// minute, cache, pending MistServer invalidations, JWKS per tenant.
    Status {
        /// Print the report as JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
        /// The control listener (default: from `[control] listen`).
        #[arg(long)]
        url: Option<String>,
        /// A file whose first line is the control token (default: the config's first token).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Print the control API's OpenAPI 3.1 document (what `openapi.json` holds).
    Openapi,
    /// Evaluate a token against the config file offline; exit 0 allowed, 1 denied, 2 error.
    Verify {
        #[arg(long)]
        stream: String,
        #[arg(long, default_value = "")]
        token: String,
        /// Evaluate a push of the stream (its publish rule) instead of a viewer.
        #[arg(long)]
        publish: bool,
        /// With --publish: the stream key the encoder sends (`key` query parameter).
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value = "127.0.0.1")]
        ip: String,
        #[arg(long, default_value = "HLS")]
        connector: String,
        /// Call the webhook of a webhook policy (otherwise: webhook-test-skipped).
        #[arg(long)]
        fire_webhook: bool,
    },
}

/// Parses the command line and runs it.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config),
        Command::CheckConfig => check_config(&cli.config),
        Command::Keygen {
            kid,
            alg,
            bits,
            out,
        } => keygen(&kid, &alg, bits, &out),
        Command::Sign(args) => sign(args),
        Command::MistSetup {
            api,
            handler,
            push_rewrite,
        } => mist_setup(&cli.config, api, handler, push_rewrite),
        Command::Openapi => {
            print!("{}", crate::control::openapi::pretty());
            ExitCode::SUCCESS
        }
        Command::Status {
            json,
            url,
            token_file,
        } => status(&cli.config, json, url.as_deref(), token_file.as_deref()),
        Command::Verify {
            stream,
            token,
            publish,
            key,
            ip,
            connector,
            fire_webhook,
        } => {
            let push = match (publish, key) {
                (true, key) => Some(key.unwrap_or_default()),
                (false, None) => None,
                (false, Some(_)) => {
                    eprintln!("usher verify: --key goes with --publish");
                    return ExitCode::from(2);
                }
            };
            let request = VerifyRequest {
                stream: &stream,
                token: &token,
                ip: &ip,
                connector: &connector,
                fire_webhook,
                push_key: push.as_deref(),
            };
            verify(&cli.config, &request)
        }
    }
}

/// The tokio runtime every subcommand runs on. Without one nothing can run: the process says why
/// and exits 2 (a usage/environment error), never panics.
fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("usher: cannot start the tokio runtime: {e}");
            #[allow(
                clippy::exit,
                reason = "no runtime: nothing can run, not even the caller"
            )]
            std::process::exit(2)
        }
    }
}

fn serve(config: &std::path::Path) -> ExitCode {
    match runtime().block_on(crate::serve::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usher: {e:#}");
            tracing::error!(error = format!("{e:#}"), "exiting");
            ExitCode::from(1)
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let (problems, warnings) = match runtime().block_on(setup::load(path)) {
        Ok(loaded) => (Vec::new(), loaded.warnings),
        Err(problems) => (problems.0, Vec::new()),
    };
    for w in &warnings {
        println!("warning: {w}");
    }
    if problems.is_empty() {
        println!("{}: ok", path.display());
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("{p}");
        }
        eprintln!("{}: {} problem(s)", path.display(), problems.len());
        ExitCode::from(1)
    }
}

fn keygen(kid: &str, alg: &str, bits: Option<u32>, out: &std::path::Path) -> ExitCode {
    let Some(alg) = KeyAlg::parse(alg) else {
        eprintln!("usher keygen: unknown alg {alg:?}");
        return ExitCode::from(2);
    };
    match keys::keygen::write_key_files(out, kid, alg, bits) {
        Ok(written) => {
            println!("kid: {kid}");
            println!("{}", written.shown_jwk);
            match &written.public_key {
                Some(public) => eprintln!(
                    "wrote {} (private, 0600), {}, {}",
                    written.private_key.display(),
                    public.display(),
                    written.jwk.display()
                ),
                None => eprintln!(
                    "wrote {} (secret, 0600), {} (oct JWK with the secret, 0600)",
                    written.private_key.display(),
                    written.jwk.display()
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("usher keygen: {e}");
            ExitCode::from(1)
        }
    }
}

/// The arguments of `usher sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Private key PEM (or the shared secret file for HS*, its bytes exactly).
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    kid: String,
    #[arg(long, default_value = "ES256")]
    alg: String,
    /// Seconds from now until `exp` (default 3600).
    #[arg(long, allow_hyphen_values = true)]
    exp_in: Option<i64>,
    /// Seconds from now until `nbf`.
    #[arg(long, allow_hyphen_values = true)]
    nbf_in: Option<i64>,
    #[arg(long)]
    aud: Option<String>,
    #[arg(long)]
    sub: Option<String>,
    /// An IP or CIDR the viewer must come from.
    #[arg(long)]
    ipa: Option<String>,
    /// NAME=JSON (a value that is not JSON is taken as a string); repeatable.
    #[arg(long = "claim")]
    claims: Vec<String>,
    /// A stream name or `*`-suffixed prefix the token may read; repeatable (SPEC §10).
    #[arg(long = "read")]
    read: Vec<String>,
    /// A stream name or `*`-suffixed prefix the token may publish; repeatable (SPEC §10).
    #[arg(long = "publish")]
    publish: Vec<String>,
    /// The claim --read/--publish are written to (the tenant's `permission_claim`).
    #[arg(long, default_value = crate::publish::permission::DEFAULT_CLAIM)]
    permission_claim: String,
}

fn sign(a: SignArgs) -> ExitCode {
    let Some(alg) = KeyAlg::parse(&a.alg) else {
        eprintln!("usher sign: unknown alg {:?}", a.alg);
        return ExitCode::from(2);
    };
    let mut claims = Vec::new();
    for c in &a.claims {
        match keys::sign::parse_claim_arg(c) {
            Ok(claim) => claims.push(claim),
            Err(e) => {
                eprintln!("usher sign: --claim {c:?}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if !a.read.is_empty() || !a.publish.is_empty() {
        let value = crate::publish::permission::claim_value(&a.read, &a.publish);
        claims.push((a.permission_claim.clone(), value));
    }
    let key = match std::fs::read(&a.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("usher sign: cannot read {}: {e}", a.key.display());
            return ExitCode::from(2);
        }
    };
    let opts = keys::sign::SignOptions {
        kid: a.kid,
        alg,
        exp_in_s: a.exp_in,
        nbf_in_s: a.nbf_in,
        aud: a.aud,
        sub: a.sub,
        ipa: a.ipa,
        claims,
    };
    // A clock before 1970 would sign tokens that expired decades ago: refuse instead.
    let Ok(now) = crate::clock::Clock::default().unix_secs() else {
        eprintln!("usher sign: the system clock reads before 1970");
        return ExitCode::from(1);
    };
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    match keys::sign::sign(&key, &opts, now) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("usher sign: {e}");
            ExitCode::from(1)
        }
    }
}

/// What `usher verify` evaluates: a viewer, or with `push_key` a push.
struct VerifyRequest<'a> {
    stream: &'a str,
    token: &'a str,
    ip: &'a str,
    connector: &'a str,
    fire_webhook: bool,
    /// `Some` (possibly empty) for `--publish`: the stream key the encoder sends.
    push_key: Option<&'a str>,
}

fn verify(path: &std::path::Path, v: &VerifyRequest<'_>) -> ExitCode {
    let request = OwnedRequest::dry_run(v.stream, v.token, v.ip, v.connector);
    let mode = Mode::DryRun {
        fire_webhook: v.fire_webhook,
    };
    let decision = runtime().block_on(async {
        let loaded = setup::load(path).await?;
        let entry = loaded.snapshot.resolve(v.stream).clone();
        let decision = match v.push_key {
            None => {
                loaded
                    .evaluator
                    .evaluate(&loaded.snapshot, &entry, &request.as_request(), mode)
                    .await
            }
            Some(key) => {
                let url = crate::decision::dry_run_push_url(v.stream, v.token, key);
                let push = crate::decision::PushRequest {
                    stream: v.stream,
                    host: v.ip,
                    connector: v.connector,
                    push_url: &url,
                };
                loaded
                    .evaluator
                    .evaluate_push(&loaded.snapshot, &entry, &push, mode)
                    .await
            }
        };
        Ok::<_, policy::build::Problems>(decision)
    });
    let decision = match decision {
        Ok(d) => d,
        Err(problems) => {
            eprint!("usher verify: invalid config:\n{problems}");
            return ExitCode::from(2);
        }
    };
    match serde_json::to_string_pretty(&decision) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("usher verify: {e}");
            return ExitCode::from(2);
        }
    }
    if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn status(
    path: &std::path::Path,
    json: bool,
    url: Option<&str>,
    token_file: Option<&std::path::Path>,
) -> ExitCode {
    use crate::status::client::Target;
    let config = match crate::config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("usher status: {e}");
            return ExitCode::from(2);
        }
    };
    let report = Target::from_config(&config, url, token_file)
        .and_then(|target| runtime().block_on(target.fetch()));
    match report {
        Ok(report) if json => match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("usher status: {e}");
                ExitCode::from(1)
            }
        },
        Ok(report) => {
            print!("{}", crate::status::text::render(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("usher status: {e}");
            ExitCode::from(1)
        }
    }
}

fn mist_setup(
    path: &std::path::Path,
    api: Option<String>,
    handler: Option<String>,
    push_rewrite: bool,
) -> ExitCode {
    let config = match crate::config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("usher mist-setup: {e}");
            return ExitCode::from(2);
        }
    };
    let mut mist = config.mist.clone();
    if let Some(api) = api {
        mist.api_url = api;
    }
    let handler = handler.unwrap_or_else(|| {
        let mut listen = config.trigger.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{listen}/trigger")
    });
    let result = runtime().block_on(async {
        let client = crate::mist::MistClient::new(&mist)?;
        crate::mist::setup::run(
            &client,
            &handler,
            crate::mist::setup::triggers(push_rewrite),
        )
        .await
    });
    match result {
        Ok(changes) => {
            for c in changes {
                println!("{}: {} (handler {handler})", c.trigger, c.action);
                if c.others > 0 {
                    println!(
                        "  note: {} other {} handler(s) left as they were",
                        c.others, c.trigger
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("usher mist-setup: {e}");
            ExitCode::from(1)
        }
    }
}

//! zclient: the zinit-client crate (crates.io, 0.4.0) as a command line, so
//! test/integration/zinit-client.test.ts can drive every method of its
//! `ZinitClient` against hero-init's control socket and the real zinit.
//! One call per run: the result as one JSON line on stdout (exit 0), or
//! `{"error": VARIANT, "message": DISPLAY, …}` (exit 1) so a test can
//! assert which `ZinitError` variant the crate made of the reply. A call
//! it does not know (or a `create` whose JSON does not parse): the usage,
//! exit 2.
use std::process::ExitCode;
use zinit_client::{StreamExt, ZinitClient, ZinitError};

const USAGE: &str = "usage: zclient SOCK list | status NAME | start NAME | stop NAME | \
restart NAME | monitor NAME | forget NAME | kill NAME SIGNAL | get NAME | \
create NAME JSON | delete NAME | shutdown | reboot | logs [NAME] | follow SECONDS [NAME]";

/// The variant's name (its Debug form up to the payload) and its fields.
fn error_json(e: &ZinitError) -> serde_json::Value {
    let debug = format!("{e:?}");
    let variant = debug.split(['(', ' ', '{']).next().unwrap_or("");
    let mut out = serde_json::json!({ "error": variant, "message": e.to_string() });
    if let ZinitError::JsonRpcError {
        code,
        message,
        data,
    } = e
    {
        out["code"] = (*code).into();
        out["rpc_message"] = message.clone().into();
        out["data"] = data.clone().unwrap_or(serde_json::Value::Null);
    }
    out
}

/// All entries of a snapshot (the stream ends when the daemon closes it).
async fn snapshot(c: &ZinitClient, name: Option<&String>) -> Result<serde_json::Value, ZinitError> {
    let mut stream = c.logs(false, name).await?;
    let mut entries = Vec::new();
    while let Some(entry) = stream.next().await {
        entries.push(serde_json::to_value(entry?)?);
    }
    Ok(entries.into())
}

/// A follow, read for `secs` seconds: the entries it gave, and whether the daemon ended it meanwhile.
async fn follow(
    c: &ZinitClient,
    secs: u64,
    name: Option<&String>,
) -> Result<serde_json::Value, ZinitError> {
    let mut stream = c.logs(true, name).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut entries = Vec::new();
    let mut ended = false;
    while let Ok(next) = tokio::time::timeout_at(deadline, stream.next()).await {
        match next {
            Some(entry) => entries.push(serde_json::to_value(entry?)?),
            None => {
                ended = true;
                break;
            }
        }
    }
    Ok(serde_json::json!({ "entries": entries, "ended": ended }))
}

/// Whether `cmd` is a call zclient knows, with its arguments.
fn valid(cmd: &str, args: &[String]) -> bool {
    match (cmd, args.len()) {
        ("list" | "shutdown" | "reboot", 0) | ("logs", 0 | 1) => true,
        ("status" | "start" | "stop" | "restart" | "monitor" | "forget", 1) => true,
        ("get" | "delete", 1) | ("kill", 2) => true,
        ("create", 2) => serde_json::from_str::<serde_json::Value>(&args[1]).is_ok(),
        ("follow", 1 | 2) => args[0].parse::<u64>().is_ok(),
        _ => false,
    }
}

/// Runs one call (checked by `valid`).
async fn run(c: &ZinitClient, cmd: &str, args: &[String]) -> Result<serde_json::Value, ZinitError> {
    let unit = |r: Result<(), ZinitError>| r.map(|()| serde_json::Value::Null);
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    Ok(match cmd {
        "list" => serde_json::to_value(c.list().await?)?,
        "status" => serde_json::to_value(c.status(arg(0)).await?)?,
        "start" => unit(c.start(arg(0)).await)?,
        "stop" => unit(c.stop(arg(0)).await)?,
        "restart" => unit(c.restart(arg(0)).await)?,
        "monitor" => unit(c.monitor(arg(0)).await)?,
        "forget" => unit(c.forget(arg(0)).await)?,
        "kill" => unit(c.kill(arg(0), arg(1)).await)?,
        "get" => c.get_service(arg(0)).await?,
        "create" => unit(
            c.create_service(arg(0), serde_json::from_str(&arg(1))?)
                .await,
        )?,
        "delete" => unit(c.delete_service(arg(0)).await)?,
        "shutdown" => unit(c.shutdown().await)?,
        "reboot" => unit(c.reboot().await)?,
        "logs" => snapshot(c, args.first()).await?,
        _ => follow(c, arg(0).parse().unwrap_or(1), args.get(1)).await?,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.len() < 2 || !valid(&argv[1], &argv[2..]) {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let client = ZinitClient::new(&argv[0]);
    match run(&client, &argv[1], &argv[2..]).await {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", error_json(&e));
            ExitCode::from(1)
        }
    }
}

//! What several commands share: seconds given as an option (`--timeout`), the platform public
//! key's option pair, text from elsewhere made safe to print, a private file created new, and
//! the signals that stop a long-running command (serve, listen).

use std::time::Duration;

use wechatpay_chain::{Error, PublicKey};

/// The wait when `--timeout` is not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `t` seconds, if more than 0 and less than a day.
fn in_range(t: f64) -> Option<Duration> {
    (t > 0.0 && t.is_finite() && t < 86_400.0).then(|| Duration::from_secs_f64(t))
}

/// `t` seconds, given by `option` (named in the error): more than 0, less than a day.
pub fn seconds(t: f64, option: &str) -> Result<Duration, Error> {
    in_range(t)
        .ok_or_else(|| Error::config(format!("{option} {t} must be a positive number of seconds")))
}

/// clap's parser of an option in seconds (`--header-read-timeout 2.5`): more than 0, less
/// than a day.
pub fn seconds_arg(s: &str) -> Result<Duration, String> {
    s.parse()
        .ok()
        .and_then(in_range)
        .ok_or_else(|| format!("{s:?} is not a number of seconds above 0 and below 86400"))
}

/// `--timeout`, 10 seconds when it is not given.
pub fn timeout(t: Option<f64>) -> Result<Duration, Error> {
    t.map_or(Ok(DEFAULT_TIMEOUT), |t| seconds(t, "timeout"))
}

/// The platform public key `--public-key` (read through `key_source`) with its id
/// `--public-key-id`: both or neither.
pub fn public_key<'a>(
    key: Option<&str>,
    id: Option<&'a str>,
    key_source: impl Fn(&str) -> String,
) -> Result<Option<(&'a str, PublicKey)>, Error> {
    match (key, id) {
        (Some(k), Some(id)) => Ok(Some((id, crate::scheme::public_key(&key_source(k))?))),
        (Some(_), None) => Err(Error::config(
            "--public-key needs --public-key-id (WECHATPAY_PUBLIC_KEY_ID)",
        )),
        (None, Some(_)) => Err(Error::config(
            "--public-key-id needs --public-key (WECHATPAY_PUBLIC_KEY)",
        )),
        (None, None) => Ok(None),
    }
}

/// Text from elsewhere (a handler's answer, a platform's message) made safe for a terminal:
/// each control character becomes a space (an escape sequence that retitles the window,
/// clears the screen or colours a fake verdict; a carriage return that writes over a line),
/// but line feeds and tabs when `lines` keeps the text's lines.
pub fn printable(text: &str, lines: bool) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' if lines => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// A file created new for writing, readable by its owner only (mode 0600): never opened
/// through a symbolic link (one planted there would redirect the write, and truncate its
/// target), never over a file that is already there (`AlreadyExists`).
pub fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

/// The signals that stop a long-running command: SIGINT (Ctrl-C) and SIGTERM, and SIGHUP
/// when asked for (elsewhere than on Unix, Ctrl-C).
pub struct Stop {
    #[cfg(unix)]
    signals: Vec<tokio::signal::unix::Signal>,
}

impl Stop {
    /// Sets the handlers up; within a tokio runtime.
    pub fn new(hangup: bool) -> Result<Stop, Error> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let fail = |e: std::io::Error| Error::config_from("cannot handle the stop signals", e);
            let mut kinds = vec![SignalKind::interrupt(), SignalKind::terminate()];
            if hangup {
                kinds.push(SignalKind::hangup());
            }
            let signals = kinds
                .into_iter()
                .map(|k| signal(k).map_err(fail))
                .collect::<Result<_, _>>()?;
            Ok(Stop { signals })
        }
        #[cfg(not(unix))]
        {
            let _ = hangup;
            Ok(Stop {})
        }
    }

    /// Waits for one of the signals.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            std::future::poll_fn(|cx| {
                let any = self.signals.iter_mut().any(|s| s.poll_recv(cx).is_ready());
                if any {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

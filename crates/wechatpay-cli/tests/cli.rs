//! The command line as a user runs it: the built binary in a child process.
//!
//! `wechatpay serve`'s keys directory (a private, fresh, removed-on-exit directory; a
//! `--keys-dir` others could write refused; nothing written through a link; production secrets
//! from the environment not copied without `--use-env-secrets`), encrypted PEM keys refused
//! with the option and the file named (never a pass-phrase prompt), and call options before a
//! subcommand that takes them.
#![cfg(unix)]

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use wechatpay_chain::{Builder, Error};

/// A scratch directory of the test, mode 0700, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("wechatpay-cli-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with no WECHATPAY_* variable of the test's environment, in a session of its
/// own (no controlling terminal: an OpenSSL pass-phrase prompt could not block on one).
fn wechatpay() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wechatpay"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WECHATPAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd
}

/// A `wechatpay serve` that printed where its env file is; killed when dropped.
struct Running {
    child: Child,
    env_path: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn dir(&self) -> &Path {
        self.env_path.parent().unwrap()
    }

    fn env(&self) -> String {
        std::fs::read_to_string(&self.env_path).unwrap()
    }

    /// Sends `signal` and waits for the process to end.
    fn stop(mut self, signal: i32) -> ExitStatus {
        // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
        self.child.wait().unwrap()
    }
}

/// What `serve` did: started (and printed its env file), or exited with its stderr.
enum Serve {
    Started(Running),
    Exited(ExitStatus, String),
}

impl Serve {
    fn started(self) -> Running {
        match self {
            Serve::Started(r) => r,
            Serve::Exited(status, err) => panic!("serve exited ({status}): {err}"),
        }
    }

    fn refused(self) -> String {
        match self {
            Serve::Exited(status, err) => {
                assert_eq!(status.code(), Some(3), "a configuration error: {err}");
                err
            }
            Serve::Started(r) => panic!("serve started with {}", r.env_path.display()),
        }
    }
}

fn serve(mut cmd: Command) -> Serve {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        if let Some(p) = line.trim().strip_prefix("keys and settings: source ") {
            let p = p.trim_matches('\'');
            return Serve::Started(Running {
                child,
                env_path: PathBuf::from(p),
            });
        }
    }
    let out = child.wait_with_output().unwrap();
    Serve::Exited(
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Default keys directory: fresh, named at random, 0700 with 0600 files, removed on exit by
/// the signal that stops it.
fn default_dir_is_private_and_removed_on(signal: i32) {
    let tmp = Scratch::new(&format!("default-{signal}"));
    let start = || {
        let mut cmd = wechatpay();
        cmd.arg("serve").env("TMPDIR", &tmp.0);
        serve(cmd).started()
    };
    let (a, b) = (start(), start());
    for r in [&a, &b] {
        let dir = r.dir();
        assert_eq!(dir.parent().unwrap(), tmp.0, "in the system temp directory");
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("wechatpay-emulator-"), "{name}");
        let port = r.env().lines().find_map(|l| {
            l.strip_prefix("export WECHATPAY_BASE_URI=http://127.0.0.1:")
                .map(|p| p.trim_end_matches('/').to_string())
        });
        assert_ne!(
            Some(name.trim_start_matches("wechatpay-emulator-").to_string()),
            port,
            "not named after the port"
        );
        assert_eq!(mode(dir), 0o700, "{name}");
        let files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert!(files.len() >= 3, "key, platform key, env: {files:?}");
        for f in files {
            assert!(f.file_type().unwrap().is_file());
            assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
        }
    }
    assert_ne!(a.dir(), b.dir(), "a fresh directory each time");
    let (da, db) = (a.dir().to_path_buf(), b.dir().to_path_buf());
    let status = a.stop(signal);
    assert!(status.success(), "a clean stop: {status}");
    assert!(!da.exists(), "{} removed", da.display());
    assert!(db.exists(), "the other one's directory is left alone");
    b.stop(signal);
    assert!(!db.exists(), "{} removed", db.display());
}

#[test]
fn serve_default_keys_dir_is_private_random_and_removed_on_sigterm() {
    default_dir_is_private_and_removed_on(libc::SIGTERM);
}

#[test]
fn serve_default_keys_dir_is_private_random_and_removed_on_sigint() {
    default_dir_is_private_and_removed_on(libc::SIGINT);
}

#[test]
fn serve_refuses_a_keys_dir_others_can_write_and_writes_nothing() {
    let tmp = Scratch::new("hostile");
    let victim = tmp.0.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    // What another local user prepares: an open directory with `env` linked to a file.
    let hostile = tmp.0.join("wechatpay-emulator-8080");
    std::fs::create_dir(&hostile).unwrap();
    std::os::unix::fs::symlink(&victim, hostile.join("env")).unwrap();
    std::os::unix::fs::symlink(&victim, hostile.join("apiclient_key.pem")).unwrap();
    for m in [0o777, 0o770, 0o1777, 0o702] {
        std::fs::set_permissions(&hostile, std::fs::Permissions::from_mode(m)).unwrap();
        let mut cmd = wechatpay();
        cmd.arg("serve").arg("--keys-dir").arg(&hostile);
        let err = serve(cmd).refused();
        assert!(err.contains(&hostile.display().to_string()), "{err}");
        assert!(err.contains("writable"), "{err}");
        assert!(err.contains("chmod"), "says what to do: {err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(
            std::fs::read_dir(&hostile).unwrap().count(),
            2,
            "nothing added"
        );
    }
}

#[test]
fn serve_does_not_write_through_links_in_its_keys_dir() {
    let tmp = Scratch::new("links");
    let victim = tmp.0.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    for name in ["env", "apiclient_key.pem", "pub_key.pem"] {
        let dir = tmp.0.join(format!("keys-{name}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
        let mut cmd = wechatpay();
        cmd.arg("serve").arg("--keys-dir").arg(&dir);
        let err = serve(cmd).refused();
        assert!(err.contains(&dir.join(name).display().to_string()), "{err}");
        assert!(err.contains("exists"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(dir.join(name))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

#[test]
fn serve_refuses_a_keys_dir_of_another_owner() {
    // Only root can give a directory away; as another user the check is the same code path.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let tmp = Scratch::new("owner");
    let dir = tmp.0.join("keys");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let mut cmd = wechatpay();
    cmd.arg("serve").arg("--keys-dir").arg(&dir);
    let err = serve(cmd).refused();
    assert!(err.contains("owned by"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn serve_keys_dir_given_is_created_private_and_kept() {
    let tmp = Scratch::new("given");
    let dir = tmp.0.join("a").join("keys");
    let mut cmd = wechatpay();
    cmd.arg("serve").arg("--keys-dir").arg(&dir);
    let r = serve(cmd).started();
    assert_eq!(r.dir(), dir.canonicalize().unwrap());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("env")), 0o600);
    assert_eq!(mode(&dir.join("apiclient_key.pem")), 0o600);
    r.stop(libc::SIGTERM);
    assert!(dir.join("env").exists(), "--keys-dir is the user's: kept");
    // A second run does not overwrite what the first one left.
    let mut cmd = wechatpay();
    cmd.arg("serve").arg("--keys-dir").arg(&dir);
    let err = serve(cmd).refused();
    assert!(err.contains("already exists"), "{err}");
    // run in the background of a shell, it says that it stopped, and how to start afresh
    assert!(err.starts_with("wechatpay serve stopped: "), "{err}");
    assert!(err.contains("mktemp -d"), "{err}");
}

const PROD_V3: &str = "ProductionApiV3Key0123456789abcd";
const PROD_V2: &str = "ProductionApiV2Key0123456789abcd";

#[test]
fn serve_ignores_secrets_from_the_environment_without_the_flag() {
    let tmp = Scratch::new("envsecrets");
    let run = |name: &str, flags: &[&str]| {
        let mut cmd = wechatpay();
        cmd.env("WECHATPAY_APIV3_KEY", PROD_V3)
            .env("WECHATPAY_SECRET", PROD_V2)
            .arg("serve")
            .args(flags)
            .arg("--keys-dir")
            .arg(tmp.0.join(name));
        let r = serve(cmd).started();
        let env = r.env();
        r.stop(libc::SIGTERM);
        env
    };
    let env = run("plain", &[]);
    assert!(!env.contains(PROD_V3), "{env}");
    assert!(!env.contains(PROD_V2), "{env}");
    let env = run("flag", &["--use-env-secrets"]);
    assert!(
        env.contains(&format!("WECHATPAY_APIV3_KEY={PROD_V3}")),
        "{env}"
    );
    assert!(
        env.contains(&format!("WECHATPAY_SECRET={PROD_V2}")),
        "{env}"
    );
    // Given on the command line, a key is meant for the emulator.
    let env = run(
        "explicit",
        &["--apiv3-key", "CommandLineApiV3Key0123456789abc"],
    );
    assert!(env.contains("WECHATPAY_APIV3_KEY=CommandLineApiV3Key0123456789abc"));
    assert!(!env.contains(PROD_V2), "{env}");
}

#[test]
fn global_options_before_a_subcommand_are_recognised() {
    let out = wechatpay()
        .args(["--timeout", "5", "certificates", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("Downloads the platform certificates"),
        "{text}"
    );

    let tmp = Scratch::new("globals");
    let mut cmd = wechatpay();
    cmd.args(["--mchid", "1900000109", "serve", "--keys-dir"])
        .arg(tmp.0.join("keys"));
    let r = serve(cmd).started();
    assert!(
        r.env().contains("WECHATPAY_MCHID=1900000109"),
        "{}",
        r.env()
    );

    // An option that does not apply to the subcommand: a usage error naming both.
    let out = wechatpay()
        .args(["--mchid", "1900000109", "--timeout", "5", "serve"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--timeout does not apply to `wechatpay serve`"),
        "{err}"
    );

    // A call's own arguments do not combine with a subcommand: a clear usage error.
    let out = wechatpay()
        .args(["get", "v3/certificates", "demo"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("demo"), "{err}");
}

/// A merchant key pair, its self-signed certificate and the key as encrypted PKCS#8 PEM.
fn encrypted_merchant_key(dir: &Path) -> (PathBuf, PathBuf, String, String) {
    let pkey = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "1900000109").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let sn = openssl::bn::BigNum::from_u32(7).unwrap();
    b.set_serial_number(&sn.to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&pkey).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&pkey, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let cert = String::from_utf8(b.build().to_pem().unwrap()).unwrap();
    let key = pkey
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pa55")
        .unwrap();
    let key = String::from_utf8(key).unwrap();
    assert!(key.contains("BEGIN ENCRYPTED PRIVATE KEY"));
    let (cp, kp) = (
        dir.join("apiclient_cert.pem"),
        dir.join("apiclient_key.pem"),
    );
    std::fs::write(&cp, &cert).unwrap();
    std::fs::write(&kp, &key).unwrap();
    (cp, kp, cert, key)
}

#[test]
fn encrypted_merchant_key_is_refused_naming_the_option_and_the_file() {
    let tmp = Scratch::new("encrypted");
    let (cert, key, _, _) = encrypted_merchant_key(&tmp.0);
    let out = wechatpay()
        .args(["--base-uri", "http://127.0.0.1:9/", "--mchid", "1900000109"])
        .args(["--secret", "0123456789abcdef0123456789abcdef"])
        .arg("--merchant-cert")
        .arg(&cert)
        .arg("--merchant-key")
        .arg(&key)
        .args([
            "post",
            "v2/secapi/pay/refund",
            r#"{"xml":{"appid":"wx1"},"security":true}"#,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--merchant-key"), "{err}");
    assert!(err.contains(&key.display().to_string()), "{err}");
    assert!(err.contains("encrypted"), "{err}");
    assert!(
        !err.contains("pass phrase"),
        "OpenSSL was not asked to prompt: {err}"
    );

    // The API private key given the same way: the same refusal, naming its option.
    let out = wechatpay()
        .args(["--base-uri", "http://127.0.0.1:9/", "--mchid", "1900000109"])
        .args([
            "--serial",
            "7",
            "--public-key-id",
            "PUB_KEY_ID_0000000000000000000000000001",
        ])
        .arg("--public-key")
        .arg(&cert)
        .arg("--private-key")
        .arg(&key)
        .args(["get", "v3/certificates"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--private-key"), "{err}");
    assert!(err.contains(&key.display().to_string()), "{err}");
    assert!(err.contains("encrypted"), "{err}");
    assert!(
        !err.contains("pass phrase"),
        "OpenSSL was not asked to prompt: {err}"
    );
}

#[test]
fn builder_refuses_an_encrypted_merchant_tls_key_without_prompting() {
    let tmp = Scratch::new("builder");
    let (_, _, cert, key) = encrypted_merchant_key(&tmp.0);
    let e = Builder::new()
        .mchid("1900000109")
        .secret("0123456789abcdef0123456789abcdef")
        .merchant_identity(&cert, &key)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Key { .. }), "{e:?}");
    assert!(e.to_string().contains("encrypted"), "{e}");
    assert!(e.to_string().contains("merchant_identity"), "{e}");
}

#[test]
fn serve_env_file_is_data_to_the_shell_that_sources_it() {
    let tmp = Scratch::new("quoting");
    let marker = tmp.0.join("ran");
    let secret = format!("k'ey $(touch {}) \"`x`\"", marker.display());
    let dir = tmp.0.join("keys dir");
    let mut cmd = wechatpay();
    cmd.args(["serve", "--secret", &secret, "--keys-dir"])
        .arg(&dir);
    let r = serve(cmd).started();
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#". "$1" && printf '%s\n%s' "$WECHATPAY_SECRET" "$WECHATPAY_PRIVATE_KEY""#)
        .arg("sh")
        .arg(&r.env_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (got_secret, key_path) = text.split_once('\n').unwrap();
    assert_eq!(got_secret, secret);
    assert_eq!(Path::new(key_path), dir.join("apiclient_key.pem"));
    assert!(!marker.exists(), "sourcing env ran a command");
}

#[test]
fn serve_takes_its_limits_from_the_command_line() {
    // Values out of range are usage errors, before anything starts or is written.
    for bad in [
        ["--max-connections", "0"],
        ["--header-read-timeout", "0"],
        ["--header-read-timeout", "soon"],
    ] {
        let out = wechatpay().arg("serve").args(bad).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(err.contains(bad[0]), "{bad:?}: {err}");
    }
    // A connection that sends nothing is closed after --header-read-timeout (0.5 s here; the
    // default, 10 s, would outlast the 5 s this test waits).
    let mut cmd = wechatpay();
    cmd.args(["serve", "--header-read-timeout", "0.5"]);
    let r = serve(cmd).started();
    let env = r.env();
    let base = env
        .lines()
        .find_map(|l| l.strip_prefix("export WECHATPAY_BASE_URI="))
        .unwrap_or_else(|| panic!("no base URI in {env}"));
    let addr = base
        .trim_matches('\'')
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    match std::io::Read::read(&mut stream, &mut buf) {
        Ok(_) => {} // closed (0 bytes), or hyper's 408 before closing
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "still open after 5 s: {e}"
        ),
    }
    r.stop(libc::SIGTERM);
}

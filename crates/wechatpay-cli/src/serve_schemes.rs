//! `serve --merchants N --sm2-merchants K`: merchants of both schemes in one sandbox. The env
//! file of a merchant of the other scheme names that scheme (`WECHATPAY_SCHEME`) and the
//! platform key the sandbox holds for it, so that the command speaks it.

use std::path::Path;

use wechatpay_chain::Error;
use wechatpay_emulator::{private_key_pem, Emulator};

/// Points `env` (a merchant's variables) at the sandbox's platform key of the other scheme,
/// written beside the first merchant's files.
pub fn second_platform_env(
    emu: &Emulator,
    dir: &Path,
    write: impl Fn(&Path, &str) -> Result<(), Error>,
    env: &mut Vec<(&str, String)>,
) -> Result<(), Error> {
    let Some(p) = emu.second_platform() else {
        return Ok(());
    };
    let name = p.scheme.algorithm_type().to_ascii_lowercase();
    env.retain(|(k, _)| {
        !matches!(
            *k,
            "WECHATPAY_SCHEME"
                | "WECHATPAY_PLATFORM_CERT"
                | "WECHATPAY_PUBLIC_KEY"
                | "WECHATPAY_PUBLIC_KEY_ID"
                | "WECHATPAY_SANDBOX_PLATFORM_PRIVATE_KEY"
                | "WECHATPAY_SANDBOX_PLATFORM_SERIAL"
        )
    });
    env.push(("WECHATPAY_SCHEME", name.clone()));
    match &p.certificate {
        Some(cert) => {
            let path = dir.join(format!("wechatpay_{}.pem", cert.serial()));
            write(&path, &cert.to_pem()?)?;
            env.push(("WECHATPAY_PLATFORM_CERT", path.display().to_string()));
        }
        None => {
            let pem =
                p.public_key.as_openssl().public_key_to_pem().map_err(|e| {
                    Error::key(format!("cannot encode the platform public key: {e}"))
                })?;
            let path = dir.join(format!("pub_key.{name}.pem"));
            write(&path, &String::from_utf8_lossy(&pem))?;
            env.push(("WECHATPAY_PUBLIC_KEY", path.display().to_string()));
            env.push(("WECHATPAY_PUBLIC_KEY_ID", p.serial.clone()));
        }
    }
    let path = dir.join(format!("sandbox_platform_key.{name}.pem"));
    write(&path, &private_key_pem(&p.private_key)?)?;
    env.push((
        "WECHATPAY_SANDBOX_PLATFORM_PRIVATE_KEY",
        path.display().to_string(),
    ));
    env.push(("WECHATPAY_SANDBOX_PLATFORM_SERIAL", p.serial));
    Ok(())
}

//! Certificate rotation and public-key mode, the client against the emulator.

mod against_the_emulator {
    use serde_json::json;
    use wechatpay_chain::Builder;
    use wechatpay_emulator::{Emulator, EmulatorConfig, Mode};

    fn native(client: &wechatpay_chain::Client, emu: &Emulator, n: u32) -> u16 {
        client["v3/pay/transactions/native"]
            .post(json!({"json": {
                "appid": "wxd678efh567hg6787", "mchid": emu.mchid(), "description": "rotation",
                "out_trade_no": format!("rotation{n:04}"), "notify_url": "https://127.0.0.1:1/n",
                "amount": {"total": 1},
            }}))
            .unwrap()
            .status()
            .as_u16()
    }

    #[test]
    fn a_rotation_is_followed_without_dropping_the_old_certificate() {
        let emu = Emulator::start(EmulatorConfig::new().mode(Mode::Certificate)).unwrap();
        let first = emu.platform_serial().to_string();
        // Nothing but the APIv3 key: the certificate comes from v3/certificates.
        let client = Builder::new()
            .mchid(emu.mchid())
            .serial(emu.merchant_serial())
            .private_key(emu.merchant_private_key().unwrap().clone())
            .base_uri(emu.base_uri())
            .auto_certificates(emu.apiv3_key())
            .build()
            .unwrap();
        assert_eq!(client.keyring().serials(), vec![first.clone()]);
        assert_eq!(native(&client, &emu, 1), 200);

        let second = emu.rotate_certificate().unwrap();
        assert_ne!(second, first);
        // Signed with the new certificate: the client refreshes and verifies.
        assert_eq!(native(&client, &emu, 2), 200);
        let mut want = vec![first, second];
        want.sort();
        assert_eq!(client.keyring().serials(), want);
        let listings = emu
            .requests()
            .iter()
            .filter(|r| r.target.starts_with("/v3/certificates"))
            .count();
        assert_eq!(listings, 2, "one download at build, one on the new serial");
        assert_eq!(native(&client, &emu, 3), 200);
    }

    #[test]
    fn public_key_mode_answers_404_or_403_and_the_client_keeps_its_public_key() {
        for status in [404u16, 403] {
            let emu =
                Emulator::start(EmulatorConfig::new().no_certificates_status(status)).unwrap();
            assert!(emu.rotate_certificate().is_err());
            let client = emu
                .builder()
                .auto_certificates(emu.apiv3_key())
                .build()
                .unwrap();
            assert_eq!(native(&client, &emu, 1), 200);
            assert_eq!(client.refresh_certificates().unwrap(), 0);
            assert_eq!(
                client.keyring().serials(),
                vec![emu.platform_serial().to_string()]
            );
            let e = client.download_certificates(emu.apiv3_key()).unwrap_err();
            assert_eq!(e.status(), Some(status));
        }
    }
}

//! Unit tests of the layered configuration: defaults, files, environment, key names in errors.

use super::*;

#[test]
fn defaults_parse_and_validate() {
    let c = Config::defaults();
    c.validate().unwrap();
    assert_eq!(c.listen.port(), 8080);
    assert_eq!(c.delivery.max_body_chars, 20000);
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
fn bad_values_name_the_key() {
    figment::Jail::expect_with(|jail| {
        // cargo exports the build script's GATEWAY_TEST_GUESTS_DIR to test processes too.
        jail.clear_env();
        jail.set_env("GATEWAY_MAX_EVENT_BYTES", "lots");
        let err = Config::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.to_lowercase().contains("max_event_bytes"), "{err}");
        jail.set_env("GATEWAY_MAX_EVENT_BYTES", "10");
        jail.set_env("GATEWAY_DELIVERY__WORKERS", "0");
        let err = Config::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("delivery.workers"), "{err}");
        jail.set_env("GATEWAY_DELIVERY__WORKERS", "3");
        // Unrelated variables with the prefix are ignored, and reported.
        jail.set_env("GATEWAY_TEST_SOMETHING", "1");
        assert!(Config::unknown_env().contains(&"GATEWAY_TEST_SOMETHING".to_string()));
        jail.set_env("GATEWAY_POSTGRES__MAX_CONNECTIONS", "1");
        let err = Config::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres.max_connections"), "{err}");
        jail.set_env("GATEWAY_POSTGRES__MAX_CONNECTIONS", "32");
        jail.create_file(
            "gw.toml",
            "listen = \"127.0.0.1:9\"\n[delivery]\nlease_secs = 30\n",
        )?;
        let c = Config::load(Some(Path::new("gw.toml")), &Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 9);
        assert_eq!(c.delivery.workers, 3);
        assert_eq!(c.delivery.lease_secs, 30);
        assert_eq!(c.postgres.max_connections, 32);
        assert_eq!(c.postgres.connect_timeout_secs, 3);
        jail.set_env("GATEWAY_SERVER__HEADER_READ_TIMEOUT_SECS", "0");
        let err = Config::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.header_read_timeout_secs"), "{err}");
        jail.set_env("GATEWAY_SERVER__HEADER_READ_TIMEOUT_SECS", "2");
        jail.set_env("GATEWAY_METRICS_LISTEN", "nowhere");
        let err = Config::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics_listen"), "{err}");
        jail.set_env("GATEWAY_METRICS_LISTEN", "127.0.0.1:9");
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.server.header_read_timeout_secs, 2);
        assert_eq!(c.metrics_addr(), Some("127.0.0.1:9".parse().unwrap()));
        jail.create_file("typo.toml", "lisen = \"x\"\n")?;
        let err = Config::load(Some(Path::new("typo.toml")), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        Ok(())
    });
}

#[test]
fn smtp_settings_are_checked_by_key_and_the_password_never_printed() {
    let mut c = Config::defaults();
    assert!(!c.smtp.enabled(), "mail is off by default");
    c.validate().unwrap();
    let err = |c: &Config| c.validate().unwrap_err().to_string();
    c.smtp.url = "http://mail.example.com".into();
    assert!(err(&c).contains("smtp.url"), "{}", err(&c));
    c.smtp.url = "smtp://mail.example.com:587?tls=required".into();
    assert!(err(&c).contains("smtp.from"), "{}", err(&c));
    c.smtp.from = "not an address".into();
    assert!(err(&c).contains("smtp.from"), "{}", err(&c));
    c.smtp.from = "Webhook Gateway <gateway@example.com>".into();
    c.smtp.username = "gateway".into();
    assert!(err(&c).contains("smtp.username"), "{}", err(&c));
    c.smtp.password = "smtp-pass-8841x".into();
    c.validate().unwrap();
    c.smtp.url = "smtps://mail.example.com".into();
    c.validate().unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("smtp-pass-8841x"), "{shown}");
    c.notifications.retry_max_secs = 1;
    assert!(
        err(&c).contains("notifications.retry_max_secs"),
        "{}",
        err(&c)
    );
    c.notifications.retry_max_secs = 600;
    c.notifications.digest_window_secs = 0;
    assert!(
        err(&c).contains("notifications.digest_window_secs"),
        "{}",
        err(&c)
    );
}

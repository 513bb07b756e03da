//! Settings from outside: an integration's settings as the API takes them
//! (protobuf) and as the store keeps them (JSON), and an account's
//! schedule and time zone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

use dirsync_core::IntegrationSettings;
use dirsync_core::schedule::Schedule;
use dirsync_proto::api;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = api::IntegrationSettings::decode(data)
        && let Ok(settings) = dirsync_convert::settings_from_api(&s)
    {
        // What the API accepted reads back the same.
        let again =
            dirsync_convert::settings_from_api(&dirsync_convert::settings_to_api(&settings))
                .expect("accepted settings are accepted again");
        assert_eq!(again, settings);
        let _ = settings.warnings();
        let _ = settings.partition();
    }
    let _ = serde_json::from_slice::<IntegrationSettings>(data);
    let text = String::from_utf8_lossy(data);
    let (tz, times) = text.split_once('|').unwrap_or((&text, ""));
    if let Ok(schedule) = Schedule::parse(tz, times) {
        let _ = schedule.next_after(1_796_000_000_000);
        let _ = schedule.slots_between(1_796_000_000_000, 1_796_000_000_000 + 3 * 86_400_000);
    }
});

//! The console's pages, scripts and styles, embedded in the binary:
//! nothing is fetched from elsewhere at run time.

pub(super) struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $type:literal),* $(,)?) => {
        const ASSETS: &[(&str, Asset)] = &[$(
            ($name, Asset {
                content_type: $type,
                body: include_bytes!(concat!("../../console/", $name)),
            }),
        )*];
    };
}

assets!(
    "index.html" => "text/html; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "logo.svg" => "image/svg+xml",
);

pub(super) fn get(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|(n, _)| *n == name).map(|(_, a)| a)
}

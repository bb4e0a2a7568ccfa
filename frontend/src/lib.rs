//! The WASM entry point: hydrates the server-rendered page.

use leptos::prelude::*;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    match grouplab_app::Page::from_document() {
        Ok(page) => leptos::mount::hydrate_body(move || view! { <grouplab_app::App page /> }),
        // The server's HTML stays readable; only the live parts are missing.
        Err(problem) => leptos::logging::error!("grouplab cannot bring this page alive: {problem}"),
    }
}

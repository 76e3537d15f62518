//! The console's pages as handlebars templates compiled into the binary; handlebars
//! escapes every `{{value}}`, so a customer's `<script>` shows as text.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use handlebars::Handlebars;
use serde_json::Value;

static VIEWS: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    for (name, source) in [
        ("layout", include_str!("views/layout.hbs")),
        ("signin", include_str!("views/signin.hbs")),
        ("summary", include_str!("views/summary.hbs")),
        ("sends", include_str!("views/sends.hbs")),
        ("contact", include_str!("views/contact.hbs")),
        ("rows", include_str!("views/rows.hbs")),
        ("missing", include_str!("views/missing.hbs")),
        ("plan", include_str!("views/plan.hbs")),
        ("cadences", include_str!("views/cadences.hbs")),
        ("message", include_str!("views/message.hbs")),
        ("suppressions", include_str!("views/suppressions.hbs")),
    ] {
        h.register_template_string(name, source)
            .unwrap_or_else(|e| panic!("console view {name}: {e}"));
    }
    h
});

/// The page `name` rendered with `data`.
pub fn page(name: &str, data: &Value) -> Response {
    match VIEWS.render(name, data) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(view = name, error = %e, "console page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "This page could not be shown.\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_view_compiles() {
        assert!(super::VIEWS.has_template("contact"));
    }
}

//! EC2's error pages, byte for byte, as captured on real instances (see
//! `tests/fixtures/captures/README.md` for the sources).
//!
//! - The 404 page (339 bytes; smithy-rs test data 2021, a botocore log 2022): XHTML in
//!   `iso-8859-1`, the DOCTYPE's second line indented with two TABs and a space, a final
//!   newline.
//! - The Xen generation's 401 (343 bytes; DataDog agent PR 4857, 2020): the same page with
//!   the DOCTYPE's second line indented with one TAB.
//! - Nitro instances answer 401 (2024, 2025 captures) and every 403 (2022, 2023 captures)
//!   with an empty body: those pages are not here.

macro_rules! page {
    ($indent:literal, $title:literal) => {
        concat!(
            "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n",
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n",
            $indent,
            "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n",
            "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>",
            $title,
            "</title>\n </head>\n <body>\n  <h1>",
            $title,
            "</h1>\n </body>\n</html>\n"
        )
    };
}

/// Every generation's 404 (captured 2021 and 2022).
pub const NOT_FOUND: &str = page!("\t\t ", "404 - Not Found");
/// The Xen generation's 401, served under `HTTP/1.0` (captured 2020).
pub const XEN_UNAUTHORIZED: &str = page!("\t", "401 - Unauthorized");
/// The Xen generation's 400: no capture; the Xen 401's shape with the title AWS documents.
pub const XEN_BAD_REQUEST: &str = page!("\t", "400 - Missing or Invalid Parameters");

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_match_the_captured_content_lengths() {
        assert_eq!(super::NOT_FOUND.len(), 339);
        assert_eq!(super::XEN_UNAUTHORIZED.len(), 343);
    }
}

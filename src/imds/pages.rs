//! EC2's error pages, byte for byte: XHTML documents with no trailing newline. The 404 is as
//! captured on EC2 (iso-8859-1, DOCTYPE over two lines); the others as documented (UTF-8,
//! one-line DOCTYPE).

macro_rules! page {
    (two_line $title:literal) => {
        concat!(
            "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n",
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n",
            "         \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n",
            page!(body $title)
        )
    };
    (one_line $title:literal) => {
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" ",
            "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n",
            page!(body $title)
        )
    };
    (body $title:literal) => {
        concat!(
            "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>",
            $title,
            "</title>\n </head>\n <body>\n  <h1>",
            $title,
            "</h1>\n </body>\n</html>"
        )
    };
}

pub const NOT_FOUND: &str = page!(two_line "404 - Not Found");
pub const BAD_REQUEST: &str = page!(one_line "400 - Missing or Invalid Parameters");
pub const UNAUTHORIZED: &str = page!(one_line "401 - Unauthorized");
pub const FORBIDDEN: &str = page!(one_line "403 - Forbidden");

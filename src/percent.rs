//! `%XX` escapes, decoded (URL query values, `$ref` names).

/// `text` with its `%XX` escapes decoded; a `%` not followed by two hex
/// digits stays as it is; invalid UTF-8 is replaced.
pub(crate) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_escapes_and_keeps_the_rest() {
        assert_eq!(
            super::decode("PagedResultSet%5BTicket%5D"),
            "PagedResultSet[Ticket]"
        );
        assert_eq!(super::decode("%2Fetc%2Fca.pem"), "/etc/ca.pem");
        assert_eq!(super::decode("50%"), "50%");
        assert_eq!(super::decode("%zz"), "%zz");
    }
}

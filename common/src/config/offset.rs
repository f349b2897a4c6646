//! The one grammar of a UTC offset in every config of the workspace (the agent's `[audit] timezone`,
//! the park's `[park] timezone` and `[plant.audit] timezone`, the simulator's `plant.timezone`): the
//! contract's `+HH:MM` / `-HH:MM`, hours 00..14, minutes 00..59. Nothing else, not even "Z" or "UTC":
//! one spelling per offset, so a config the park accepts is one the agent accepts, and the message for
//! "Z" says to write "+00:00".

use chrono::FixedOffset;

/// `+HH:MM` / `-HH:MM` (hours at most 14, minutes at most 59); `None` for anything else.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = |x: &[u8]| -> Option<i32> {
        if x.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(x).ok()?.parse().ok()
        } else {
            None
        }
    };
    let (h, m) = (digits(&b[1..3])?, digits(&b[4..6])?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// The message for a value of `key` that [`parse_offset`] refuses (the same in every config).
pub fn offset_error(key: &str, s: &str) -> String {
    let utc = ["z", "utc", "gmt"].contains(&s.trim().to_ascii_lowercase().as_str());
    format!(
        "{key} \"{}\" must be a UTC offset +HH:MM or -HH:MM, e.g. \"+08:00\"{}",
        super::cut_echo(s),
        if utc { "; UTC is \"+00:00\"" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+08:00"), FixedOffset::east_opt(8 * 3600));
        assert_eq!(
            parse_offset("-03:30"),
            FixedOffset::east_opt(-(3 * 3600 + 1800))
        );
        assert_eq!(parse_offset("+00:00"), FixedOffset::east_opt(0));
        assert_eq!(parse_offset("+14:00"), FixedOffset::east_opt(14 * 3600));
        for bad in [
            "08:00",
            "+8:00",
            "+25:00",
            "+15:00",
            "+08:60",
            "+0800",
            "+08:00:00",
            "UTC",
            "Z",
            "z",
            "GMT",
            "",
            "+",
        ] {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_message_names_the_key_and_says_how_utc_is_written() {
        assert_eq!(
            offset_error("timezone", "Asia/Shanghai"),
            "timezone \"Asia/Shanghai\" must be a UTC offset +HH:MM or -HH:MM, e.g. \"+08:00\""
        );
        assert_eq!(
            offset_error("[park] timezone", "Z"),
            "[park] timezone \"Z\" must be a UTC offset +HH:MM or -HH:MM, e.g. \"+08:00\"; UTC is \"+00:00\""
        );
    }
}

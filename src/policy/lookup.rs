//! How a MistServer stream name maps to the names a policy may be attached to (SPEC §2).

/// The object id of a stream: the part after the first `+`, or the whole name.
pub fn object_id(stream: &str) -> &str {
    match stream.split_once('+') {
        Some((_, object)) => object,
        None => stream,
    }
}

/// The base name of a wildcard stream (`live` for `live+abc123`); `None` without a `+`.
pub fn base_name(stream: &str) -> Option<&str> {
    stream.split_once('+').map(|(base, _)| base)
}

/// The names to look a policy up by, most specific first: the exact stream name, the object id,
/// then the base name. Duplicates are skipped (`abc` is both stream and object).
pub fn candidates(stream: &str) -> impl Iterator<Item = &str> {
    let object = object_id(stream);
    let base = base_name(stream);
    let object = (object != stream).then_some(object);
    std::iter::once(stream).chain(object).chain(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_stream_maps_to_object_after_first_plus() {
        assert_eq!(object_id("live+abc123"), "abc123");
        assert_eq!(object_id("live+abc+def"), "abc+def");
        assert_eq!(base_name("live+abc123"), Some("live"));
    }

    #[test]
    fn plain_stream_is_its_own_object() {
        assert_eq!(object_id("vod"), "vod");
        assert_eq!(base_name("vod"), None);
        assert_eq!(candidates("vod").collect::<Vec<_>>(), ["vod"]);
    }

    #[test]
    fn lookup_order_is_stream_then_object_then_base() {
        assert_eq!(
            candidates("live+abc123").collect::<Vec<_>>(),
            ["live+abc123", "abc123", "live"]
        );
    }
}

//! The exposition formats of `/metrics` and the choice between them from a request's `Accept`
//! header, with q-values, as Prometheus sends it (its `scrape_protocols` list).

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4, the default.
    Text,
    /// OpenMetrics 1.0 text: `_created`, exemplars, `# EOF`.
    OpenMetrics,
    /// Delimited `io.prometheus.client.MetricFamily` messages, with native histograms.
    Protobuf,
}

impl Format {
    /// The exact `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; \
                 encoding=delimited"
            }
        }
    }

    /// The format an `Accept` header asks for: the acceptable one with the highest q-value
    /// (the earlier on a tie); text when there is no header or nothing we offer matches.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best: Option<(f64, Format)> = None;
        for range in accept.unwrap_or("").split(',') {
            let Some((format, q)) = media_range(range) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, f)| f)
    }
}

/// One media range of an `Accept` header: the format it names and its q-value.
fn media_range(range: &str) -> Option<(Format, f64)> {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next()?.to_ascii_lowercase();
    let mut q = 1.0;
    let (mut proto, mut encoding, mut version) = (None, None, None);
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "q" => q = v.parse::<f64>().ok().filter(|q| (0.0..=1.0).contains(q))?,
            "proto" => proto = Some(v.to_string()),
            "encoding" => encoding = Some(v.to_ascii_lowercase()),
            "version" => version = Some(v.to_string()),
            _ => {}
        }
    }
    let format = match media.as_str() {
        "application/vnd.google.protobuf" => {
            let proto_ok = proto.is_none_or(|p| p == "io.prometheus.client.MetricFamily");
            let encoding_ok = encoding.is_none_or(|e| e == "delimited");
            (proto_ok && encoding_ok).then_some(Format::Protobuf)?
        }
        "application/openmetrics-text" => {
            let ok = version.is_none_or(|v| v == "1.0.0" || v == "0.0.1");
            ok.then_some(Format::OpenMetrics)?
        }
        "text/plain" => {
            let ok = version.is_none_or(|v| v == "0.0.4");
            ok.then_some(Format::Text)?
        }
        "*/*" | "text/*" => Format::Text,
        _ => return None,
    };
    Some((format, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_accept_headers_choose_their_first_preference() {
        // Prometheus 2.42 with --enable-feature=native-histograms.
        let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(native)), Format::Protobuf);
        // Prometheus 2.42 without it.
        let plain = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(plain)), Format::OpenMetrics);
        // Prometheus 3's default scrape_protocols order.
        let v3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(v3)), Format::OpenMetrics);
    }

    #[test]
    fn q_values_decide_and_unknown_or_refused_ranges_fall_back_to_text() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(Some("text/html")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.3")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;q=0, application/vnd.google.protobuf;q=0.2"
            )),
            Format::Protobuf
        );
        // Another protobuf message or encoding is not ours.
        assert_eq!(
            Format::negotiate(Some(
                "application/vnd.google.protobuf;proto=other.Message;encoding=delimited"
            )),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/vnd.google.protobuf;encoding=text")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/OpenMetrics-Text; version=\"1.0.0\"")),
            Format::OpenMetrics
        );
    }
}

//! The little XML S3 and STS speak: error documents and list results, read into a flat element list.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One element: its depth (root = 0), local name and direct text content (entities decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlElement {
    pub(crate) depth: usize,
    pub(crate) name: String,
    pub(crate) text: String,
}

/// Flatten a document into its elements in document order.
pub(crate) fn flatten(xml: &str) -> Result<Vec<XmlElement>, String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut out: Vec<XmlElement> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                out.push(XmlElement {
                    depth: open.len(),
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    text: String::new(),
                });
                open.push(out.len() - 1);
            }
            Ok(Event::Empty(e)) => out.push(XmlElement {
                depth: open.len(),
                name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                text: String::new(),
            }),
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::Text(t)) => {
                if let Some(&i) = open.last() {
                    let text = t.unescape().map_err(|e| e.to_string())?;
                    out[i].text.push_str(&text);
                }
            }
            Ok(Event::CData(c)) => {
                if let Some(&i) = open.last() {
                    out[i]
                        .text
                        .push_str(&String::from_utf8_lossy(&c.into_inner()));
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if !open.is_empty() {
        return Err("unexpected end of document".to_owned());
    }
    Ok(out)
}

/// The text of the first element named `name`, anywhere in the document.
pub(crate) fn first_text(elements: &[XmlElement], name: &str) -> Option<String> {
    elements
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_with_entities_and_cdata() {
        let els = flatten(
            "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>a &amp; b</Message><Key><![CDATA[x<y]]></Key><Empty/></Error>",
        )
        .unwrap();
        assert_eq!(first_text(&els, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(first_text(&els, "Message").as_deref(), Some("a & b"));
        assert_eq!(first_text(&els, "Key").as_deref(), Some("x<y"));
        assert_eq!(first_text(&els, "Empty").as_deref(), Some(""));
        assert_eq!(els[1].depth, 1);
    }

    #[test]
    fn keeps_significant_whitespace() {
        let els = flatten("<R><Key> spaced key </Key></R>").unwrap();
        assert_eq!(first_text(&els, "Key").as_deref(), Some(" spaced key "));
    }

    #[test]
    fn rejects_truncated_documents() {
        assert!(flatten("<Error><Code>NoSuchKey</Code>").is_err());
        assert!(flatten("<a></b>").is_err());
    }
}

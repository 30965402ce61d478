//! `ListObjectsV2`.

use std::time::SystemTime;

use yatagarasu_core::EntityTag;

use crate::time::parse_rfc3339;
use crate::xml;

/// Parameters of one `ListObjectsV2` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListObjectsV2Request {
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// Group keys by this separator into common prefixes (usually `/`).
    pub delimiter: Option<String>,
    /// Continue after a previous page.
    pub continuation_token: Option<String>,
    /// Start after this key.
    pub start_after: Option<String>,
    /// Most keys in one page (S3 caps it at 1000).
    pub max_keys: Option<u32>,
}

impl ListObjectsV2Request {
    /// Set [`Self::prefix`].
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Set [`Self::delimiter`].
    #[must_use]
    pub fn with_delimiter(mut self, delimiter: impl Into<String>) -> Self {
        self.delimiter = Some(delimiter.into());
        self
    }

    /// Set [`Self::continuation_token`].
    #[must_use]
    pub fn with_continuation_token(mut self, continuation_token: impl Into<String>) -> Self {
        self.continuation_token = Some(continuation_token.into());
        self
    }

    /// Set [`Self::start_after`].
    #[must_use]
    pub fn with_start_after(mut self, start_after: impl Into<String>) -> Self {
        self.start_after = Some(start_after.into());
        self
    }

    /// Set [`Self::max_keys`].
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: u32) -> Self {
        self.max_keys = Some(max_keys);
        self
    }

    pub(crate) fn to_query(&self) -> Vec<(String, String)> {
        let mut q = vec![("list-type".to_owned(), "2".to_owned())];
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push((k.to_owned(), v.clone()));
            }
        };
        push("prefix", &self.prefix);
        push("delimiter", &self.delimiter);
        push("continuation-token", &self.continuation_token);
        push("start-after", &self.start_after);
        if let Some(m) = self.max_keys {
            q.push(("max-keys".to_owned(), m.to_string()));
        }
        q
    }
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectSummary {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The ETag.
    pub etag: Option<EntityTag>,
    /// Last modification time.
    pub last_modified: Option<SystemTime>,
    /// Storage class, e.g. `STANDARD`.
    pub storage_class: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListObjectsV2Page {
    /// The objects.
    pub objects: Vec<ObjectSummary>,
    /// Common prefixes, when a delimiter was given.
    pub common_prefixes: Vec<String>,
    /// Whether more pages follow.
    pub is_truncated: bool,
    /// The token for the next page.
    pub next_continuation_token: Option<String>,
}

pub(crate) fn parse_list_objects_v2(text: &str) -> Result<ListObjectsV2Page, String> {
    let els = xml::flatten(text)?;
    if els.first().is_none_or(|e| e.name != "ListBucketResult") {
        return Err("root element is not ListBucketResult".to_owned());
    }
    let mut page = ListObjectsV2Page::default();
    let mut i = 1;
    while i < els.len() {
        let e = &els[i];
        i += 1;
        if e.depth != 1 {
            continue;
        }
        match e.name.as_str() {
            "IsTruncated" => page.is_truncated = e.text.trim() == "true",
            "NextContinuationToken" => page.next_continuation_token = Some(e.text.clone()),
            "Contents" => {
                let mut o = ObjectSummary {
                    key: String::new(),
                    size: 0,
                    etag: None,
                    last_modified: None,
                    storage_class: None,
                };
                let mut has_key = false;
                while i < els.len() && els[i].depth > 1 {
                    let c = &els[i];
                    if c.depth == 2 {
                        match c.name.as_str() {
                            "Key" => {
                                o.key = c.text.clone();
                                has_key = true;
                            }
                            "Size" => {
                                o.size = c
                                    .text
                                    .trim()
                                    .parse()
                                    .map_err(|_| format!("bad Size `{}`", c.text))?;
                            }
                            "ETag" => o.etag = EntityTag::parse_lenient(&c.text),
                            "LastModified" => o.last_modified = parse_rfc3339(&c.text),
                            "StorageClass" => o.storage_class = Some(c.text.clone()),
                            _ => {}
                        }
                    }
                    i += 1;
                }
                if !has_key {
                    return Err("Contents without Key".to_owned());
                }
                page.objects.push(o);
            }
            "CommonPrefixes" => {
                while i < els.len() && els[i].depth > 1 {
                    if els[i].depth == 2 && els[i].name == "Prefix" {
                        page.common_prefixes.push(els[i].text.clone());
                    }
                    i += 1;
                }
            }
            _ => {}
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_page() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
  <Contents><Key>a &amp; b.txt</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>dir/x</Key><Size>0</Size></Contents>
  <CommonPrefixes><Prefix>photos/</Prefix></CommonPrefixes>
  <NextContinuationToken>tok==</NextContinuationToken>
</ListBucketResult>"#;
        let page = parse_list_objects_v2(xml).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok=="));
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "a & b.txt");
        assert_eq!(page.objects[0].size, 12);
        assert_eq!(page.objects[0].etag.as_ref().unwrap().opaque(), "abc");
        assert!(page.objects[0].last_modified.is_some());
        assert_eq!(page.objects[1].key, "dir/x");
        assert_eq!(page.common_prefixes, vec!["photos/"]);
    }

    #[test]
    fn rejects_other_documents() {
        assert!(parse_list_objects_v2("<Error><Code>x</Code></Error>").is_err());
        assert!(
            parse_list_objects_v2(
                "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>"
            )
            .is_err()
        );
        assert!(parse_list_objects_v2("<ListBucketResult><Contents><Key>k</Key><Size>x</Size></Contents></ListBucketResult>").is_err());
    }
}

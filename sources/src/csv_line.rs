//! Splitting one line of CSV into fields, with RFC 4180 quoting (`"a,b"`, `"say ""hi"""`).
//!
//! Trace files are read line by line so that a record's line number is exact and every worker can
//! count lines without decoding them; a record therefore never spans lines.

/// The fields of one CSV line, stored back to back in one buffer that is reused from line to line.
#[derive(Debug, Default)]
pub(crate) struct CsvFields {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl CsvFields {
    /// Splits `line` (without its line terminator) at commas outside quotes, unquoting quoted fields.
    /// The error says what is wrong with the quoting.
    pub(crate) fn split(&mut self, line: &[u8]) -> Result<(), &'static str> {
        self.data.clear();
        self.ends.clear();
        let mut bytes = line.iter().copied().peekable();
        loop {
            if bytes.peek() == Some(&b'"') {
                bytes.next();
                loop {
                    match bytes.next() {
                        None => return Err("unterminated quoted field"),
                        Some(b'"') if bytes.peek() == Some(&b'"') => {
                            bytes.next();
                            self.data.push(b'"');
                        }
                        Some(b'"') => break,
                        Some(b) => self.data.push(b),
                    }
                }
                match bytes.peek() {
                    None | Some(b',') => {}
                    Some(_) => return Err("text after the closing quote of a field"),
                }
            } else {
                while let Some(b) = bytes.next_if(|b| *b != b',') {
                    self.data.push(b);
                }
            }
            self.ends.push(self.data.len());
            if bytes.next().is_none() {
                return Ok(());
            }
        }
    }

    /// Number of fields.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Field `i` (empty if there is no such field).
    pub(crate) fn get(&self, i: usize) -> &[u8] {
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).copied().unwrap_or(self.data.len()),
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        &self.data[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<String>, &'static str> {
        let mut fields = CsvFields::default();
        fields.split(line.as_bytes())?;
        Ok((0..fields.len())
            .map(|i| String::from_utf8(fields.get(i).to_vec()).unwrap())
            .collect())
    }

    #[test]
    fn splits_plain_and_quoted_fields() {
        assert_eq!(split("a,b,,c").unwrap(), ["a", "b", "", "c"]);
        assert_eq!(split("").unwrap(), [""]);
        assert_eq!(split(",").unwrap(), ["", ""]);
        assert_eq!(split(r#"1,"/x?1,2",h"#).unwrap(), ["1", "/x?1,2", "h"]);
        assert_eq!(split(r#""say ""hi""","""#).unwrap(), [r#"say "hi""#, ""]);
        assert_eq!(split(r#"a"b,c"#).unwrap(), [r#"a"b"#, "c"]);
    }

    #[test]
    fn rejects_broken_quoting() {
        assert_eq!(split(r#"1,"open"#), Err("unterminated quoted field"));
        assert_eq!(
            split(r#""a"b,c"#),
            Err("text after the closing quote of a field")
        );
    }

    #[test]
    fn missing_fields_are_empty() {
        let mut fields = CsvFields::default();
        fields.split(b"a,b").unwrap();
        assert_eq!(fields.get(1), b"b");
        assert_eq!(fields.get(5), b"");
    }
}

//! The rows of an Excel workbook (`import --xlsx FILE [--sheet NAME]`), read with calamine (feature
//! `desk`: the workspace build has it, the gateway build leaves it out).
//!
//! The sheet is read as a stream of cells (calamine's cell reader: the worksheet's XML is never held
//! whole, only the workbook's shared strings) on a thread of its own, which hands over one row at a time
//! through a small bounded channel: memory does not grow with the sheet. Cells come as Excel stores them:
//! numbers as numbers, dates as dates (serial numbers in the workbook's date system), a formula as its
//! cached value (what Excel showed when the file was saved), errors (`#N/A`) as errors. Row numbers are
//! Excel's (1-based); cells are named `B17`.

use std::sync::mpsc::{sync_channel, Receiver};

use calamine::{open_workbook, DataRef, Reader as _, Xlsx};
use chrono::NaiveDateTime;

use super::cells::{Cell, Record};

/// One owned cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum XCell {
    Empty,
    Text(String),
    Number(f64),
    Date(NaiveDateTime),
    Bool(bool),
    Error(String),
}

/// A row's cells, by 0-based column (empty cells in between filled in).
#[derive(Debug, Clone, Default)]
pub struct XRow(pub Vec<XCell>);

impl Record for XRow {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn cell(&self, i: usize) -> Cell<'_> {
        match self.0.get(i) {
            None | Some(XCell::Empty) => Cell::Empty,
            Some(XCell::Text(s)) if s.trim().is_empty() => Cell::Empty,
            Some(XCell::Text(s)) => Cell::Text(s),
            Some(XCell::Number(v)) => Cell::Number(*v),
            Some(XCell::Date(d)) => Cell::Date(*d),
            Some(XCell::Bool(b)) => Cell::Bool(*b),
            Some(XCell::Error(e)) => Cell::Error(e),
        }
    }
}

/// What the reading thread sends.
enum Msg {
    /// A row and its 1-based number.
    Row(u64, XRow),
    Failed(String),
}

/// Rows in flight between the reading thread and the import.
const CHANNEL_ROWS: usize = 256;

/// The rows of one sheet.
pub struct XlsxSource {
    rx: Receiver<Msg>,
    pub sheet: String,
    pub epoch_1904: bool,
    pub record: XRow,
    /// Rows read so far (for progress).
    pub rows_read: u64,
    done: bool,
}

/// What one read of the sheet gives.
pub enum Next {
    Record(u64),
    Bad(u64, String),
    End,
}

impl XlsxSource {
    /// Open a workbook and start reading a sheet (`sheet`, or the first). Err: a message for the user.
    pub fn open(file: &std::path::Path, sheet: Option<&str>) -> Result<XlsxSource, String> {
        let mut book: Xlsx<_> =
            open_workbook(file).map_err(|e| format!("not an Excel workbook (.xlsx): {e}"))?;
        let names = book.sheet_names();
        let sheet = match sheet {
            Some(s) => names
                .iter()
                .find(|n| n.as_str() == s)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "no sheet `{s}` in the workbook; its sheets: {}",
                        names.join(", ")
                    )
                })?,
            None => names
                .first()
                .cloned()
                .ok_or_else(|| "the workbook has no sheet".to_string())?,
        };
        let epoch_1904 = book.has_1904_epoch();
        let (tx, rx) = sync_channel(CHANNEL_ROWS);
        let name = sheet.clone();
        std::thread::Builder::new()
            .name("xlsx".into())
            .spawn(move || {
                if let Err(e) = read_sheet(&mut book, &name, &tx) {
                    // The receiver gone (the import stopped) is no error of the file.
                    let _ = tx.send(Msg::Failed(e));
                }
            })
            .map_err(|e| format!("cannot start reading: {e}"))?;
        Ok(XlsxSource {
            rx,
            sheet,
            epoch_1904,
            record: XRow::default(),
            rows_read: 0,
            done: false,
        })
    }

    pub fn next(&mut self) -> Next {
        if self.done {
            return Next::End;
        }
        match self.rx.recv() {
            Ok(Msg::Row(n, row)) => {
                self.record = row;
                self.rows_read += 1;
                Next::Record(n)
            }
            Ok(Msg::Failed(e)) => {
                self.done = true;
                Next::Bad(self.rows_read + 1, format!("cannot read the sheet: {e}"))
            }
            Err(_) => {
                self.done = true;
                Next::End
            }
        }
    }
}

/// Stream the sheet's cells into rows; Err with a message when the file is broken.
fn read_sheet<R: std::io::Read + std::io::Seek>(
    book: &mut Xlsx<R>,
    sheet: &str,
    tx: &std::sync::mpsc::SyncSender<Msg>,
) -> Result<(), String> {
    let mut cells = book
        .worksheet_cells_reader(sheet)
        .map_err(|e| e.to_string())?;
    let mut row = XRow::default();
    let mut current: Option<u32> = None;
    while let Some(c) = cells.next_cell().map_err(|e| e.to_string())? {
        let (r, col) = c.get_position();
        if current != Some(r) {
            if let Some(prev) = current {
                if tx
                    .send(Msg::Row(u64::from(prev) + 1, std::mem::take(&mut row)))
                    .is_err()
                {
                    return Ok(());
                }
            }
            current = Some(r);
        }
        let col = col as usize;
        // A sheet's columns end at XFD (16 384): a cell beyond is no cell of Excel's.
        if col >= 16_384 {
            return Err(format!(
                "a cell in column {} is beyond Excel's last column",
                col + 1
            ));
        }
        if row.0.len() <= col {
            row.0.resize(col + 1, XCell::Empty);
        }
        row.0[col] = owned(c.get_value());
    }
    if let Some(prev) = current {
        let _ = tx.send(Msg::Row(u64::from(prev) + 1, row));
    }
    Ok(())
}

fn owned(v: &DataRef<'_>) -> XCell {
    match v {
        DataRef::Empty => XCell::Empty,
        DataRef::Int(i) => XCell::Number(*i as f64),
        DataRef::Float(f) => XCell::Number(*f),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => {
            XCell::Text(s.clone())
        }
        DataRef::SharedString(s) => XCell::Text((*s).to_string()),
        DataRef::Bool(b) => XCell::Bool(*b),
        DataRef::DateTime(d) => match d.as_datetime() {
            Some(t) if d.is_datetime() => XCell::Date(t),
            // A duration (a time-of-day cell without a date) is no reading's time.
            _ => XCell::Number(d.as_f64()),
        },
        DataRef::Error(e) => XCell::Error(e.to_string()),
    }
}

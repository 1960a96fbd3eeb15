//! Kernels larger than memory: computed by row panels into a [`Sink`] (a `.npy` file or a
//! caller-owned buffer such as a file mapping) under a memory budget.
//!
//! [`Network::kernel_to`] cuts the output into row panels of `h` rows. For each panel it computes
//! the input Gram and every layer exactly as [`Network::kernel`] does (the same Gram panels and the
//! same per-entry arithmetic, so the values are bitwise those of the in-memory kernel), then hands
//! the panel to a writer thread while it computes the next one (two panel buffers when the budget
//! allows, one otherwise). When `x2` is `None` only the upper part of each panel (columns from its
//! first row on) is computed; the writer completes the panel's rows with the part left of the
//! diagonal block, read back (transposed) from the rows earlier panels wrote, so that the file is
//! the full symmetric matrix, no entry is computed twice, and each region of the file is written
//! whole, in one go (sinks that cannot be read get each panel's transpose written below it in
//! strips instead).
//!
//! Memory: the panel buffers are sized so that panels + the writer's transpose buffer + a fixed
//! reserve for scratch (tiles, faer packing) stay within `memory_limit`. [`NpyFile`] writes with
//! positioned writes (`pwrite`), which go through the page cache and never count toward the
//! process's resident set; [`MemorySink`] copies into a buffer and, for a shared file mapping,
//! releases the pages it wrote (`madvise(MADV_DONTNEED)`; their contents stay in the page cache
//! and reach the file) so that the mapping does not grow the resident set either.

use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use faer::MatRef;

use crate::control::Control;
use crate::element::Element;
use crate::error::{human_bytes, Error, Result};
use crate::input::check_inputs;
use crate::kernels::Get;
use crate::memory::available_memory;
use crate::network::Network;
use crate::tile::{panel_height, tile_size, work_units, Window};

/// Where the rows of one kernel go.
pub trait Sink<T>: Send {
    /// Store rows `r0..r0 + rows` × columns `c0..c0 + cols` of the kernel, held row-major in
    /// `data` with row stride `ld`.
    fn write(&mut self, r0: usize, c0: usize, rows: usize, cols: usize, data: &[T], ld: usize) -> Result<()>;
    /// Whether [`Sink::read`] works. A symmetric kernel is then written row panel by row panel,
    /// each panel's part below the diagonal read back (transposed) from the rows written before:
    /// every region of a file is completed at once and written back in large sequential requests.
    /// Otherwise each panel's transpose is written below it in narrow strips.
    fn supports_read(&self) -> bool {
        false
    }
    /// Read back rows `r0..r0 + rows` × columns `c0..c0 + cols` written before into `data`
    /// (row stride `ld`).
    fn read(&mut self, r0: usize, c0: usize, rows: usize, cols: usize, data: &mut [T], ld: usize) -> Result<()> {
        let _ = (r0, c0, rows, cols, data, ld);
        Err(Error::Io("this sink cannot be read back".into()))
    }
    /// Make what was written durable (a file: `fsync`). Called on every sink, once every entry
    /// was written and nothing failed, before any sink is [finished](Sink::finish).
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    /// Publish the result (a file: rename it into place). Called once per sink after every sink
    /// was synced.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    /// Undo a successful [`Sink::finish`] because another sink of the same call failed to finish
    /// (a file: put back what its path held before), so that the outputs of one call appear all
    /// or none.
    fn unfinish(&mut self) {}
    /// Called once every sink finished: drop what [`Sink::unfinish`] would have needed.
    fn commit(&mut self) {}
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {what}: {e}", path.display()))
}

/// The header of a `.npy` file (format 1.0) of a C-ordered `rows × cols` array of `T`, padded
/// to a multiple of 64 bytes.
pub fn npy_header<T: Element>(rows: usize, cols: usize) -> Vec<u8> {
    let endian = if cfg!(target_endian = "little") { '<' } else { '>' };
    let descr = format!("{endian}f{}", std::mem::size_of::<T>());
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

fn as_bytes<T: Element>(v: &[T]) -> &[u8] {
    // SAFETY: f32/f64 have no padding and every byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

/// A `.npy` file written in place: data go to a temporary file next to `PATH` with positioned
/// writes, and only [`Sink::finish`] renames it to `PATH` (after [`Sink::sync`] made it durable);
/// a file dropped unfinished (error, Ctrl-C) is deleted. So `PATH` either holds a complete kernel
/// or is left as it was.
///
/// The temporary file is `PATH.ntkrs-XXXXXXXX.partial` where `XXXXXXXX` is 8 fresh random hex digits, created
/// with `O_EXCL` (`create_new`): it never truncates or replaces a file that exists, whatever its
/// name. When `PATH` exists, its previous contents are kept under a second such name (a hard link)
/// until the call [commits](Sink::commit), so that [`Sink::unfinish`] can put them back.
pub struct NpyFile<T> {
    file: Option<File>,
    path: PathBuf,
    partial: PathBuf,
    /// A hard link to what `path` held before [`Sink::finish`] replaced it.
    backup: Option<PathBuf>,
    cols: usize,
    offset: u64,
    written: u64,
    state: FileState,
    _t: PhantomData<T>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileState {
    Writing,
    /// Renamed into place; the backup (if any) still exists.
    Finished,
    /// Renamed into place and committed.
    Committed,
    /// Finished, then taken back: `path` holds its old contents again (or nothing).
    Undone,
}

/// A name next to `path` that no file has: `PATH.ntkrs-XXXXXXXX.SUFFIX` (8 random hex digits), created (`O_EXCL`)
/// by `make`, which returns `ErrorKind::AlreadyExists` to ask for another name.
fn unique_sibling<R>(
    path: &Path,
    suffix: &str,
    mut make: impl FnMut(&Path) -> std::io::Result<R>,
) -> std::io::Result<(PathBuf, R)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut state = nanos ^ ((std::process::id() as u64) << 32);
    for _ in 0..100 {
        state = crate::random::splitmix(state ^ COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".ntkrs-{:08x}.{suffix}", state as u32));
        let candidate = PathBuf::from(name);
        match make(&candidate) {
            Ok(r) => return Ok((candidate, r)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "no free temporary name after 100 tries",
    ))
}

/// `fsync` the directory holding `path`, so that a rename into it is durable (Unix; a no-op
/// elsewhere, and where the file system refuses to sync a directory).
fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let f = File::open(dir).map_err(|e| io_error(dir, "cannot open the directory to sync it", e))?;
        match f.sync_all() {
            Ok(()) => {}
            // some file systems cannot sync directories; nothing more can be done there
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTSUP)) => {}
            Err(e) => return Err(io_error(dir, "cannot sync the directory", e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl<T: Element> NpyFile<T> {
    /// Create the temporary file next to `path` holding the header of a `rows × cols` array (the
    /// data are a hole until written).
    pub fn create(path: impl AsRef<Path>, rows: usize, cols: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let header = npy_header::<T>(rows, cols);
        let bytes = (rows as u128) * (cols as u128) * std::mem::size_of::<T>() as u128 + header.len() as u128;
        let len = u64::try_from(bytes).map_err(|_| Error::arg("out", "the kernel is too large for one file"))?;
        let (partial, file) = unique_sibling(&path, "partial", |p| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(p)
        })
        .map_err(|e| io_error(&path, "cannot create a temporary file next to it", e))?;
        let me = NpyFile {
            file: Some(file),
            path,
            partial,
            backup: None,
            cols,
            offset: header.len() as u64,
            written: 0,
            state: FileState::Writing,
            _t: PhantomData,
        };
        let f = me.file.as_ref().expect("open");
        f.set_len(len).map_err(|e| io_error(&me.partial, "cannot size", e))?;
        write_at(f, &header, 0).map_err(|e| io_error(&me.partial, "cannot write", e))?;
        Ok(me)
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file written until [`Sink::finish`].
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    /// Bytes of data written so far (each entry counted once per write).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }
}

/// Start writing `len` bytes at `offset` back to disk without waiting (Linux: `sync_file_range`
/// with `SYNC_FILE_RANGE_WRITE`), so that dirty pages do not pile up until the final `fsync`,
/// which then has little left to wait for. Large writes only; a no-op elsewhere or on failure.
fn start_writeback(f: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if len >= 1 << 20 {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; the call only schedules I/O.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, offset, len);
}

#[cfg(unix)]
fn write_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(buf, offset)
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

fn as_bytes_mut<T: Element>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: f32/f64 have no padding and every byte pattern is a valid f32/f64.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
}

#[cfg(windows)]
fn write_at(f: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_write(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

impl<T: Element> Sink<T> for NpyFile<T> {
    fn write(&mut self, r0: usize, c0: usize, rows: usize, cols: usize, data: &[T], ld: usize) -> Result<()> {
        let f = self
            .file
            .as_ref()
            .ok_or_else(|| Error::Io("the file is closed".into()))?;
        let size = std::mem::size_of::<T>() as u64;
        let at = |r: usize| self.offset + ((r0 + r) as u64 * self.cols as u64 + c0 as u64) * size;
        if cols == self.cols && ld == cols {
            // whole rows, contiguous in the file and in `data`: one write
            let bytes = as_bytes(&data[..rows * cols]);
            write_at(f, bytes, at(0)).map_err(|e| io_error(&self.partial, "write failed", e))?;
            start_writeback(f, at(0), bytes.len() as u64);
        } else {
            for r in 0..rows {
                write_at(f, as_bytes(&data[r * ld..r * ld + cols]), at(r))
                    .map_err(|e| io_error(&self.partial, "write failed", e))?;
            }
        }
        self.written += rows as u64 * cols as u64 * size;
        Ok(())
    }

    fn supports_read(&self) -> bool {
        true
    }

    fn read(&mut self, r0: usize, c0: usize, rows: usize, cols: usize, data: &mut [T], ld: usize) -> Result<()> {
        let f = self
            .file
            .as_ref()
            .ok_or_else(|| Error::Io("the file is closed".into()))?;
        let size = std::mem::size_of::<T>() as u64;
        for r in 0..rows {
            let at = self.offset + ((r0 + r) as u64 * self.cols as u64 + c0 as u64) * size;
            read_at(f, as_bytes_mut(&mut data[r * ld..r * ld + cols]), at)
                .map_err(|e| io_error(&self.partial, "read-back failed", e))?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if let Some(f) = self.file.as_ref() {
            f.sync_all()
                .map_err(|e| io_error(&self.partial, "cannot sync (fsync) the file", e))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.state != FileState::Writing {
            return Err(Error::Io(format!("{}: finished twice", self.path.display())));
        }
        self.sync()?;
        drop(self.file.take());
        // keep what `path` holds (a hard link under a fresh name) until the call commits
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| !m.is_dir()) {
            match unique_sibling(&self.path, "old", |b| std::fs::hard_link(&self.path, b)) {
                Ok((b, ())) => self.backup = Some(b),
                // no hard links on this file system: the old file cannot be restored
                Err(_) => self.backup = None,
            }
        }
        if let Err(e) = std::fs::rename(&self.partial, &self.path) {
            if let Some(b) = self.backup.take() {
                let _ = std::fs::remove_file(b);
            }
            return Err(io_error(&self.path, "cannot rename the finished file into place", e));
        }
        self.state = FileState::Finished;
        sync_parent(&self.path)
    }

    fn unfinish(&mut self) {
        if self.state != FileState::Finished {
            return;
        }
        match self.backup.take() {
            Some(b) => {
                if std::fs::rename(&b, &self.path).is_err() {
                    let _ = std::fs::remove_file(&b);
                }
            }
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        let _ = sync_parent(&self.path);
        self.state = FileState::Undone;
    }

    fn commit(&mut self) {
        if self.state == FileState::Finished {
            if let Some(b) = self.backup.take() {
                let _ = std::fs::remove_file(b);
            }
            self.state = FileState::Committed;
        }
    }
}

impl<T> Drop for NpyFile<T> {
    fn drop(&mut self) {
        drop(self.file.take());
        match self.state {
            FileState::Writing => {
                let _ = std::fs::remove_file(&self.partial);
            }
            // finished without a commit: the new file stays (as after `commit`)
            FileState::Finished => {
                if let Some(b) = self.backup.take() {
                    let _ = std::fs::remove_file(b);
                }
            }
            FileState::Committed | FileState::Undone => {}
        }
    }
}

/// A caller-owned row-major `rows × cols` buffer (for example a writable `np.memmap`).
pub struct MemorySink<'a, T> {
    ptr: *mut T,
    rows: usize,
    cols: usize,
    release: bool,
    _life: PhantomData<&'a mut [T]>,
}

// SAFETY: the sink is the only writer of its buffer while it lives (see `new`).
unsafe impl<T: Send> Send for MemorySink<'_, T> {}

impl<'a, T: Element> MemorySink<'a, T> {
    /// A sink over a borrowed slice.
    pub fn from_slice(buf: &'a mut [T], rows: usize, cols: usize) -> Result<Self> {
        if buf.len() != rows * cols {
            return Err(Error::arg(
                "out",
                format!("holds {} values, not {rows} x {cols}", buf.len()),
            ));
        }
        Ok(MemorySink {
            ptr: buf.as_mut_ptr(),
            rows,
            cols,
            release: false,
            _life: PhantomData,
        })
    }

    /// A sink over raw memory.
    ///
    /// With `release_pages`, the pages written are handed back to the OS after each write
    /// (`madvise(MADV_DONTNEED)`), which keeps the resident set small for a **shared** file
    /// mapping: the data stay in the page cache and reach the file. On private or anonymous
    /// memory that would discard what was written, so the request is honoured only when the
    /// whole buffer lies in shared file mappings (checked here, from `/proc/self/maps`; on other
    /// systems never): for any other memory it is ignored ([`MemorySink::releases_pages`] says
    /// which).
    ///
    /// # Safety
    /// `ptr` must point to `rows · cols` writable, C-ordered values that nothing else accesses
    /// while the sink lives.
    pub unsafe fn from_raw(ptr: *mut T, rows: usize, cols: usize, release_pages: bool) -> Self {
        let bytes = rows.saturating_mul(cols).saturating_mul(std::mem::size_of::<T>());
        MemorySink {
            ptr,
            rows,
            cols,
            release: release_pages && crate::memory::is_shared_file_mapping(ptr as usize, bytes),
            _life: PhantomData,
        }
    }

    /// Whether written pages are handed back to the OS (a shared file mapping, and asked for).
    pub fn releases_pages(&self) -> bool {
        self.release
    }

    #[allow(unused_variables)]
    fn release(&self, start: usize, end: usize) {
        #[cfg(target_os = "linux")]
        if self.release {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            let base = self.ptr as usize;
            let size = std::mem::size_of::<T>();
            // only pages lying entirely inside [start, end) of this buffer
            let lo = (base + start * size).div_ceil(page) * page;
            let hi = (base + end * size) / page * page;
            if hi > lo {
                // SAFETY: [lo, hi) lies inside the caller's shared file mapping (`from_raw`);
                // MADV_DONTNEED unmaps the pages, whose dirty contents stay in the page cache.
                unsafe {
                    libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED);
                }
            }
        }
    }
}

impl<T: Element> Sink<T> for MemorySink<'_, T> {
    fn write(&mut self, r0: usize, c0: usize, rows: usize, cols: usize, data: &[T], ld: usize) -> Result<()> {
        assert!(
            r0 + rows <= self.rows && c0 + cols <= self.cols,
            "write outside the sink"
        );
        for r in 0..rows {
            let src = &data[r * ld..r * ld + cols];
            // SAFETY: the destination row segment lies inside the buffer (asserted above).
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add((r0 + r) * self.cols + c0), cols);
            }
        }
        if rows > 0 {
            self.release((r0 * self.cols) + c0, (r0 + rows - 1) * self.cols + c0 + cols);
        }
        Ok(())
    }

    fn supports_read(&self) -> bool {
        true
    }

    fn read(&mut self, r0: usize, c0: usize, rows: usize, cols: usize, data: &mut [T], ld: usize) -> Result<()> {
        assert!(
            r0 + rows <= self.rows && c0 + cols <= self.cols,
            "read outside the sink"
        );
        // Reading faults the pages of a file mapping back in, and a read fault also maps the
        // cached pages around it (fault-around, 64 KiB): hand them back every few rows, so that
        // a read of narrow pieces of many rows does not map the whole region in between.
        const GROUP: usize = 32;
        for g in (0..rows).step_by(GROUP) {
            let g1 = (g + GROUP).min(rows);
            for r in g..g1 {
                // SAFETY: the source row segment lies inside the buffer (asserted above).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.ptr.add((r0 + r) * self.cols + c0),
                        data[r * ld..r * ld + cols].as_mut_ptr(),
                        cols,
                    );
                }
            }
            // whole pages from the group's first row to past its last entry (fault-around
            // spills beyond it)
            let end = ((r0 + g1 - 1) * self.cols + c0 + cols + 16384).min(self.rows * self.cols);
            self.release((r0 + g) * self.cols, end);
        }
        Ok(())
    }
}

/// Parse a byte count: an integer number of bytes, or a number with a unit, `B`, `KB`, `MB`,
/// `GB`, `TB` (powers of 1000; `K`, `M`, `G`, `T` alike) or `KiB`, `MiB`, `GiB`, `TiB` (powers of
/// 1024), case-insensitive, with optional spaces: `"2GB"`, `"512 MiB"`, `"1.5G"`, `"1000000"`.
pub fn parse_bytes(text: &str) -> Result<u64> {
    let bad = || {
        Error::arg(
            "memory_limit",
            format!(
                "cannot read {text:?} as a size; use a number of bytes or a number with a unit, such as \
                 \"512MiB\", \"2GB\" or \"1.5GiB\""
            ),
        )
    };
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = (value * mult).floor();
    if !(bytes.is_finite() && (1.0..1.8e19).contains(&bytes)) {
        return Err(Error::arg(
            "memory_limit",
            format!("{text:?} is not a positive size that fits in 64 bits"),
        ));
    }
    Ok(bytes as u64)
}

/// Options of [`Network::kernel_to`].
#[derive(Clone, Copy, Debug)]
pub struct OutOptions {
    /// Tile side and threads, as for [`Network::kernel`].
    pub kernel: crate::KernelOptions,
    /// Bytes the computation may allocate: panel buffers, the writer's transpose buffer and a
    /// fixed reserve ([`RESERVE_BYTES`]) for scratch. The inputs themselves are not counted. A
    /// ceiling: at most 80% of the memory the OS reports as available is planned for.
    pub memory_limit: u64,
}

/// Bytes set aside for per-thread scratch (tiles, faer's packing buffers) and small vectors.
pub const RESERVE_BYTES: u64 = 24 << 20;

/// Where the time of an out-of-core computation went. The compute thread's phases (`gram_s`,
/// `layers_s`, `wait_s`) add up to about `total_s`; the writer thread's (`mirror_s`, `write_s`)
/// overlap them.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Planning: per-sample variances and activation plans.
    pub plan_s: f64,
    /// Input Gram panels.
    pub gram_s: f64,
    /// The fused layer pass.
    pub layers_s: f64,
    /// Compute thread waiting for the writer to free a panel buffer.
    pub wait_s: f64,
    /// Writer: reading back the rows left of each panel's diagonal block (symmetric kernels).
    pub read_s: f64,
    /// Writer: mirroring and transposing panels.
    pub mirror_s: f64,
    /// Writer: time in the sinks' writes.
    pub write_s: f64,
    /// Wall time of the whole call.
    pub total_s: f64,
    /// Number of row panels and rows per panel.
    pub panels: usize,
    pub panel_rows: usize,
    /// Panel buffer sets (2: compute and write overlap).
    pub buffer_sets: usize,
    /// Bytes of panel and transpose buffers.
    pub buffer_bytes: u64,
    /// Bytes handed to the sinks.
    pub bytes_written: u64,
}

/// How the budget is spent: panel height, buffer sets, transpose-chunk rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub h: usize,
    pub sets: usize,
    pub chunk_rows: usize,
    pub buffer_bytes: u64,
}

/// Fit panels of a multiple of `p` rows (the Gram panel height) and `ncols` stored columns of
/// `nbuf` kernels of `elem` bytes into `limit` bytes (`extra` of which are already taken).
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_layout(
    n1: usize,
    ncols: usize,
    nbuf: usize,
    elem: usize,
    p: usize,
    sym: bool,
    limit: u64,
    extra: u64,
) -> Result<Layout> {
    let row = (nbuf * ncols * elem) as u64;
    let min_h = p.min(n1);
    // the writer's read-back + transpose buffers (symmetric kernels of more than one panel):
    // up to 64 MiB (wide blocks: fewer, larger writes)
    let tmax = (64u64 << 20).min(limit.saturating_sub(RESERVE_BYTES + extra) / 8);
    let tbytes = |h: usize| -> u64 {
        if sym && n1 > h {
            tmax.max((2 * h * elem) as u64)
        } else {
            0
        }
    };
    let need_min = RESERVE_BYTES + extra + row * min_h as u64 + tbytes(min_h);
    if limit < need_min {
        return Err(Error::arg(
            "memory_limit",
            format!(
                "{} is too small: one panel of {min_h} rows x {ncols} columns of {nbuf} kernel(s) \
                 ({}) plus scratch needs at least {} ({need_min} bytes); raise it",
                human_bytes(limit as u128),
                human_bytes((row * min_h as u64) as u128),
                human_bytes(need_min.div_ceil(100_000) as u128 * 100_000),
            ),
        ));
    }
    let avail = limit - RESERVE_BYTES - extra;
    // largest multiple of p rows such that `sets` panels and the transpose buffer fit
    let fit = |sets: u64| -> usize { (avail.saturating_sub(tmax) / (sets * row)) as usize / p * p };
    let h1 = fit(1).max(min_h);
    let (h, sets) = if h1 >= n1 {
        (n1, 1)
    } else {
        // two buffer sets let the writer work while the next panel is computed; worth it unless
        // it makes the panels (and so the transposed writes) tiny
        let h2 = fit(2);
        if h2 >= (4 * p).min(512) {
            (h2, 2)
        } else {
            (h1, 1)
        }
    };
    let t = tbytes(h);
    // two halves: the rows read back and their transpose
    let chunk_rows = if t == 0 {
        0
    } else {
        (t as usize / (2 * h * elem)).max(1)
    };
    Ok(Layout {
        h,
        sets,
        chunk_rows,
        buffer_bytes: sets as u64 * row * h as u64 + t,
    })
}

struct Panel<T> {
    r0: usize,
    r1: usize,
    bufs: Vec<Vec<T>>,
}

#[derive(Default)]
struct WriterTimes {
    read_s: f64,
    mirror_s: f64,
    write_s: f64,
    bytes: u64,
}

/// Transpose `rows × cols` of `src` (stride `ld`) into `dst` (`cols × rows`, stride `rows`), by
/// 32 × 32 blocks.
fn transpose<T: Copy>(src: &[T], ld: usize, rows: usize, cols: usize, dst: &mut [T]) {
    const B: usize = 32;
    for i0 in (0..rows).step_by(B) {
        for j0 in (0..cols).step_by(B) {
            for i in i0..(i0 + B).min(rows) {
                for j in j0..(j0 + B).min(cols) {
                    dst[j * rows + i] = src[i * ld + j];
                }
            }
        }
    }
}

/// Bytes per write of a panel's rows: the writer checks for cancellation between writes.
const WRITE_BYTES: usize = 8 << 20;

/// `sink.write` of `rows × cols` (row stride `ld`) from row `r0`, column `c0`, in groups of rows
/// of about [`WRITE_BYTES`], checking for cancellation before each.
#[allow(clippy::too_many_arguments)]
fn write_rows<T: Element>(
    sink: &mut dyn Sink<T>,
    r0: usize,
    c0: usize,
    rows: usize,
    cols: usize,
    data: &[T],
    ld: usize,
    ctl: &Control,
) -> Result<()> {
    let group = (WRITE_BYTES / (cols.max(1) * std::mem::size_of::<T>())).max(1);
    for g in (0..rows).step_by(group) {
        ctl.check()?;
        let g1 = (g + group).min(rows);
        sink.write(r0 + g, c0, g1 - g, cols, &data[g * ld..], ld)?;
    }
    Ok(())
}

/// Store one finished panel in every sink: its rows (the lower part of its diagonal block mirrored
/// first when symmetric), then, when symmetric, its transpose below it.
#[allow(clippy::too_many_arguments)]
fn write_panel<T: Element>(
    panel: &mut Panel<T>,
    sinks: &mut [&mut dyn Sink<T>],
    sym: bool,
    n1: usize,
    n2: usize,
    chunk_rows: usize,
    tbuf: &mut Vec<T>,
    times: &mut WriterTimes,
    ctl: &Control,
) -> Result<()> {
    let (r0, r1) = (panel.r0, panel.r1);
    let rows = r1 - r0;
    let (col0, ld) = if sym { (r0, n2 - r0) } else { (0, n2) };
    let size = std::mem::size_of::<T>();
    for (buf, sink) in panel.bufs.iter_mut().zip(sinks.iter_mut()) {
        ctl.check()?;
        if sym && sink.supports_read() {
            // the part left of the diagonal block, K[r0..r1, 0..r0] = K[0..r0, r0..r1]ᵀ, read back
            // by blocks of columns from the rows earlier panels wrote; then the panel's own part
            let (rbuf, wbuf) = {
                tbuf.resize(2 * chunk_rows.max(1) * rows, T::ZERO);
                tbuf.split_at_mut(chunk_rows.max(1) * rows)
            };
            for c in (0..r0).step_by(chunk_rows.max(1)) {
                ctl.check()?;
                let c1 = (c + chunk_rows.max(1)).min(r0);
                let t = Instant::now();
                sink.read(c, r0, c1 - c, rows, rbuf, rows)?;
                times.read_s += t.elapsed().as_secs_f64();
                let t = Instant::now();
                transpose(rbuf, rows, c1 - c, rows, wbuf);
                times.mirror_s += t.elapsed().as_secs_f64();
                let t = Instant::now();
                sink.write(r0, c, rows, c1 - c, wbuf, c1 - c)?;
                times.write_s += t.elapsed().as_secs_f64();
                times.bytes += ((c1 - c) * rows * size) as u64;
            }
            let t = Instant::now();
            for i in 0..rows {
                for j in i + 1..rows {
                    buf[j * ld + i] = buf[i * ld + j];
                }
            }
            times.mirror_s += t.elapsed().as_secs_f64();
            let t = Instant::now();
            write_rows(&mut **sink, r0, col0, rows, ld, buf, ld, ctl)?;
            times.write_s += t.elapsed().as_secs_f64();
            times.bytes += (rows * ld * size) as u64;
            continue;
        }
        let t = Instant::now();
        if sym {
            for i in 0..rows {
                for j in i + 1..rows {
                    buf[j * ld + i] = buf[i * ld + j];
                }
            }
        }
        times.mirror_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        write_rows(&mut **sink, r0, col0, rows, ld, buf, ld, ctl)?;
        times.write_s += t.elapsed().as_secs_f64();
        times.bytes += (rows * ld * std::mem::size_of::<T>()) as u64;
        if sym && r1 < n1 {
            // rows j ≥ r1, columns r0..r1: the transpose of this panel's columns r1..n
            tbuf.resize(chunk_rows * rows, T::ZERO);
            for j0 in (r1..n1).step_by(chunk_rows) {
                ctl.check()?;
                let j1 = (j0 + chunk_rows).min(n1);
                let t = Instant::now();
                transpose(&buf[j0 - r0..], ld, rows, j1 - j0, tbuf);
                times.mirror_s += t.elapsed().as_secs_f64();
                let t = Instant::now();
                sink.write(j0, r0, j1 - j0, rows, tbuf, rows)?;
                times.write_s += t.elapsed().as_secs_f64();
                times.bytes += ((j1 - j0) * rows * std::mem::size_of::<T>()) as u64;
            }
        }
    }
    Ok(())
}

/// Sync every sink, then finish them all or none: when one fails to finish, those finished
/// before it are taken back ([`Sink::unfinish`]).
fn finish_all<T>(sinks: &mut [&mut dyn Sink<T>], ctl: &Control) -> Result<()> {
    for s in sinks.iter_mut() {
        ctl.check()?;
        s.sync()?;
    }
    // a Ctrl-C during the syncs still cancels: nothing was published yet
    ctl.check()?;
    for k in 0..sinks.len() {
        if let Err(e) = sinks[k].finish() {
            for s in sinks[..k].iter_mut().rev() {
                s.unfinish();
            }
            return Err(e);
        }
    }
    for s in sinks.iter_mut() {
        s.commit();
    }
    Ok(())
}

impl Network {
    /// The requested kernels between the rows of `x1` and `x2` (`x1` when `None`) written into
    /// `sinks` (one per requested kernel: the NNGP's first, then the NTK's), row panel by row
    /// panel, within `opts.memory_limit` bytes. The values are bitwise those of
    /// [`Network::kernel`]. On success every sink is [finished](Sink::finish); on an error or
    /// cancellation the sinks are left unfinished (an [`NpyFile`] then deletes its partial file
    /// when dropped).
    ///
    /// ```
    /// use ntkrs_core::{Activation, Control, Dense, Get, KernelOptions, Layer, Network, Parameterization};
    /// use ntkrs_core::{MemorySink, OutOptions};
    /// let dense = |w| Layer::Dense(Dense::new(w, 1.5, Some(0.05), Parameterization::Ntk).unwrap());
    /// let net = Network::new(vec![dense(8), Layer::Activation(Activation::relu()), dense(1)]).unwrap();
    /// let x = faer::Mat::<f64>::from_fn(300, 4, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
    /// let mut buf = vec![0.0; 300 * 300];
    /// let mut sink = MemorySink::from_slice(&mut buf, 300, 300).unwrap();
    /// let opts = OutOptions { kernel: KernelOptions::default(), memory_limit: 25 << 20 };
    /// let stats = net.kernel_to(x.as_ref(), None, Get::NTK, &opts, &mut [&mut sink], &Control::new()).unwrap();
    /// assert!(stats.panels > 1);
    /// let k = net.kernel(x.as_ref(), None, Get::NTK, &KernelOptions::default(), &Control::new()).unwrap();
    /// assert_eq!(buf, k.ntk.unwrap());
    /// ```
    pub fn kernel_to<T: Element>(
        &self,
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        get: Get,
        opts: &OutOptions,
        sinks: &mut [&mut dyn Sink<T>],
        ctl: &Control,
    ) -> Result<Stats> {
        let start = Instant::now();
        get.check()?;
        check_inputs(x1, x2)?;
        let nbuf = get.count();
        if sinks.len() != nbuf {
            return Err(Error::arg(
                "out",
                format!("{nbuf} kernel(s) requested but {} output(s) given", sinks.len()),
            ));
        }
        let d = x1.ncols();
        let (n1, n2) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()));
        let elem = std::mem::size_of::<T>();
        let p = panel_height(n2, d);
        // the limit is a ceiling: never plan for more than 80% of the memory the OS says is
        // available (unless even one panel needs more; then the limit as given decides)
        let sym0 = x2.is_none();
        let limit = match available_memory() {
            Some(a) if a / 10 * 8 < opts.memory_limit => {
                let capped = a / 10 * 8;
                if plan_layout(n1, n2, nbuf, elem, p, sym0, capped, 0).is_ok() {
                    capped
                } else {
                    opts.memory_limit
                }
            }
            _ => opts.memory_limit,
        };
        // fail on a too-small budget before any work (the rescaled copies, if any, are known
        // only after planning and are checked again below)
        plan_layout(n1, n2, nbuf, elem, p, sym0, limit, 0)?;
        let t = Instant::now();
        let prep = self.prepare(x1, x2, get, ctl)?;
        let sym = prep.x2.is_none();
        let mut stats = Stats {
            plan_s: t.elapsed().as_secs_f64(),
            ..Stats::default()
        };
        let lay = plan_layout(
            n1,
            n2,
            nbuf,
            elem,
            p,
            sym,
            opts.memory_limit,
            prep.scaled.copy_bytes() as u64,
        )?;
        let (a, b) = prep.scaled.inputs(prep.x1, prep.x2);
        let tile = tile_size(opts.kernel.tile_size);
        let h = lay.h;
        let window = |r0: usize| Window {
            row0: r0,
            rows: (r0 + h).min(n1) - r0,
            col0: if sym { r0 } else { 0 },
            n2,
        };
        let starts: Vec<usize> = (0..n1).step_by(h).collect();
        ctl.add_total(starts.iter().map(|&r0| work_units(window(r0), d, sym, tile) + 1).sum());
        stats.panels = starts.len();
        stats.panel_rows = h;
        stats.buffer_sets = lay.sets;
        stats.buffer_bytes = lay.buffer_bytes;
        let runner = crate::pool::Runner::new(opts.kernel.par, n1 > tile || n2 > tile)?;

        let (to_writer, panels_rx) = mpsc::sync_channel::<Panel<T>>(lay.sets);
        let (free_tx, free_rx) = mpsc::channel::<Vec<Vec<T>>>();
        for _ in 0..lay.sets {
            // zeroed lazily by the OS: pages count only once touched
            let _ = free_tx.send((0..nbuf).map(|_| vec![T::ZERO; h * n2]).collect());
        }
        let chunk_rows = lay.chunk_rows;
        let writer_sinks = &mut *sinks;
        let (computed, written) = std::thread::scope(|s| {
            let writer = s.spawn(move || -> Result<WriterTimes> {
                let mut times = WriterTimes::default();
                let mut tbuf = Vec::new();
                for mut panel in panels_rx {
                    write_panel(
                        &mut panel,
                        writer_sinks,
                        sym,
                        n1,
                        n2,
                        chunk_rows,
                        &mut tbuf,
                        &mut times,
                        ctl,
                    )?;
                    ctl.advance(1);
                    // the compute loop may have finished: then nobody needs the buffers back
                    let _ = free_tx.send(panel.bufs);
                }
                Ok(times)
            });
            let computed = (|| -> Result<()> {
                for &r0 in &starts {
                    let t = Instant::now();
                    let Ok(mut bufs) = free_rx.recv() else {
                        return Ok(()); // the writer stopped: its error is reported below
                    };
                    stats.wait_s += t.elapsed().as_secs_f64();
                    let win = window(r0);
                    let (tg, tl) = runner.run(|parallel| -> Result<(f64, f64)> {
                        let t = Instant::now();
                        crate::tile::gram(&mut bufs[0], win, a, b, prep.scaled.gscale, parallel, ctl)?;
                        let tg = t.elapsed().as_secs_f64();
                        let t = Instant::now();
                        let inputs = crate::tile::Inputs {
                            a,
                            b,
                            gscale: prep.scaled.gscale,
                        };
                        crate::tile::layers(
                            &mut bufs,
                            win,
                            get,
                            sym,
                            false,
                            &prep.planned,
                            inputs,
                            tile,
                            parallel,
                            ctl,
                        )?;
                        Ok((tg, t.elapsed().as_secs_f64()))
                    })?;
                    stats.gram_s += tg;
                    stats.layers_s += tl;
                    let panel = Panel {
                        r0,
                        r1: r0 + win.rows,
                        bufs,
                    };
                    if to_writer.send(panel).is_err() {
                        return Ok(());
                    }
                }
                Ok(())
            })();
            if computed.is_err() {
                // stop the writer at its next check rather than let it drain queued panels
                ctl.cancel();
            }
            drop(to_writer);
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(Error::Io("the writer thread panicked".into())));
            (computed, written)
        });
        computed?;
        let times = written?;
        finish_all(sinks, ctl)?;
        stats.read_s = times.read_s;
        stats.mirror_s = times.mirror_s;
        stats.write_s = times.write_s;
        stats.bytes_written = times.bytes;
        stats.total_s = start.elapsed().as_secs_f64();
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Dense, KernelOptions, Layer, Parameterization};

    fn net() -> Network {
        let dense = || Layer::Dense(Dense::new(16, 1.4, Some(0.1), Parameterization::Ntk).unwrap());
        Network::new(vec![
            dense(),
            Layer::Activation(Activation::relu()),
            dense(),
            Layer::Activation(Activation::Gelu),
            dense(),
        ])
        .unwrap()
    }

    fn data(n: usize, d: usize, seed: u64) -> faer::Mat<f64> {
        let mut s = seed;
        faer::Mat::from_fn(n, d, |_, _| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
    }

    fn opts(limit: u64, threads: usize) -> OutOptions {
        OutOptions {
            kernel: KernelOptions {
                tile_size: 32,
                par: crate::Parallelism::from_threads(threads),
                ..Default::default()
            },
            memory_limit: limit,
        }
    }

    #[test]
    fn parse_bytes_units_and_errors() {
        assert_eq!(parse_bytes("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes(" 1.5 gib ").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert_eq!(parse_bytes("3k").unwrap(), 3000);
        for bad in ["", "GB", "2 XB", "-1GB", "1e3", "0", "0.1", "2..5GB", "99999999999TB"] {
            let e = parse_bytes(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidArgument {
                        arg: "memory_limit",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn npy_header_is_aligned_and_readable() {
        let h = npy_header::<f32>(3, 70000);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.contains("'descr': '<f4'") && text.contains("'shape': (3, 70000)") && text.ends_with('\n'));
    }

    #[test]
    fn panels_match_the_in_memory_kernel_bitwise() {
        let nw = net();
        let n = 1100;
        let x = data(n, 7, 1);
        let y = data(101, 7, 2);
        let want = nw
            .kernel(x.as_ref(), None, Get::BOTH, &KernelOptions::default(), &Control::new())
            .unwrap();
        let want_xy = nw
            .kernel(
                x.as_ref(),
                Some(y.as_ref()),
                Get::BOTH,
                &KernelOptions::default(),
                &Control::new(),
            )
            .unwrap();
        // one set of three panels, two sets of three panels, one panel
        for (limit, threads, sets, panels) in [
            (RESERVE_BYTES + 6_000_000, 1, 1, 5),
            (RESERVE_BYTES + 21_500_000, 0, 2, 3),
            (1 << 30, 2, 1, 1),
        ] {
            let (mut kn, mut kt) = (vec![0.0; n * n], vec![0.0; n * n]);
            let mut sn = MemorySink::from_slice(&mut kn, n, n).unwrap();
            let mut st = MemorySink::from_slice(&mut kt, n, n).unwrap();
            let stats = nw
                .kernel_to(
                    x.as_ref(),
                    None,
                    Get::BOTH,
                    &opts(limit, threads),
                    &mut [&mut sn, &mut st],
                    &Control::new(),
                )
                .unwrap();
            assert_eq!((stats.buffer_sets, stats.panels), (sets, panels), "{stats:?}");
            assert_eq!(&kn, want.nngp.as_ref().unwrap(), "limit {limit}: {stats:?}");
            assert_eq!(&kt, want.ntk.as_ref().unwrap(), "limit {limit}: {stats:?}");
            let mut c = vec![0.0; n * 101];
            let mut sc = MemorySink::from_slice(&mut c, n, 101).unwrap();
            nw.kernel_to(
                x.as_ref(),
                Some(y.as_ref()),
                Get::NTK,
                &opts(limit, threads),
                &mut [&mut sc],
                &Control::new(),
            )
            .unwrap();
            assert_eq!(&c, want_xy.ntk.as_ref().unwrap());
        }
    }

    /// A sink that cannot be read back: the panels' transposes go below them in strips.
    struct WriteOnly<'a>(MemorySink<'a, f64>);
    impl Sink<f64> for WriteOnly<'_> {
        fn write(&mut self, r0: usize, c0: usize, rows: usize, cols: usize, data: &[f64], ld: usize) -> Result<()> {
            self.0.write(r0, c0, rows, cols, data, ld)
        }
    }

    #[test]
    fn write_only_sinks_get_strips_with_the_same_values() {
        let nw = net();
        let n = 700;
        let x = data(n, 5, 9);
        let want = nw
            .kernel(x.as_ref(), None, Get::NTK, &KernelOptions::default(), &Control::new())
            .unwrap();
        let mut k = vec![0.0; n * n];
        let mut s = WriteOnly(MemorySink::from_slice(&mut k, n, n).unwrap());
        let stats = nw
            .kernel_to(
                x.as_ref(),
                None,
                Get::NTK,
                &opts(RESERVE_BYTES + 3_000_000, 0),
                &mut [&mut s],
                &Control::new(),
            )
            .unwrap();
        assert!(stats.panels > 1 && stats.read_s == 0.0, "{stats:?}");
        assert_eq!(&k, want.ntk.as_ref().unwrap());
    }

    #[test]
    fn small_limit_is_an_error_and_layout_fits() {
        let nw = net();
        let x = data(50, 3, 3);
        let mut buf = vec![0.0; 2500];
        let mut s = MemorySink::from_slice(&mut buf, 50, 50).unwrap();
        let e = nw
            .kernel_to(
                x.as_ref(),
                None,
                Get::NTK,
                &opts(1 << 20, 0),
                &mut [&mut s],
                &Control::new(),
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    arg: "memory_limit",
                    ..
                }
            ),
            "{e}"
        );
        for limit in [RESERVE_BYTES + 2_000_000, RESERVE_BYTES + 30_000_000, 1 << 32] {
            let l = plan_layout(10_000, 10_000, 2, 4, 16, true, limit, 0).unwrap();
            assert!(l.buffer_bytes + RESERVE_BYTES <= limit, "{l:?}");
            assert!(l.h % 16 == 0 || l.h == 10_000);
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ntkrs-out-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn temporary_names_never_clobber_existing_files() {
        let dir = temp_dir("names");
        let path = dir.join("k.npy");
        // files a user may have, under the names a naive writer would use
        std::fs::write(dir.join("k.npy.partial"), b"mine").unwrap();
        std::fs::write(&path, b"old kernel").unwrap();
        let a = NpyFile::<f64>::create(&path, 3, 3).unwrap();
        let b = NpyFile::<f64>::create(&path, 3, 3).unwrap();
        assert_ne!(a.partial_path(), b.partial_path());
        for f in [&a, &b] {
            let name = f.partial_path().file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("k.npy.ntkrs-") && name.ends_with(".partial"), "{name}");
        }
        drop((a, b));
        assert_eq!(std::fs::read(dir.join("k.npy.partial")).unwrap(), b"mine");
        assert_eq!(std::fs::read(&path).unwrap(), b"old kernel");
        assert_eq!(listing(&dir), ["k.npy", "k.npy.partial"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_files_appear_both_or_neither() {
        let nw = net();
        let n = 300;
        let x = data(n, 4, 11);
        let want = nw
            .kernel(x.as_ref(), None, Get::BOTH, &KernelOptions::default(), &Control::new())
            .unwrap();
        let dir = temp_dir("pair");
        let (pn, pt) = (dir.join("n.npy"), dir.join("t.npy"));
        // the second rename fails (its path is a directory): the first file is taken back
        std::fs::create_dir(&pt).unwrap();
        std::fs::write(pt.join("inside"), b"x").unwrap();
        for old in [None, Some(b"previous nngp".as_slice())] {
            if let Some(o) = old {
                std::fs::write(&pn, o).unwrap();
            }
            let mut fnn = NpyFile::<f64>::create(&pn, n, n).unwrap();
            let mut ft = NpyFile::<f64>::create(&pt, n, n).unwrap();
            let e = nw
                .kernel_to(
                    x.as_ref(),
                    None,
                    Get::BOTH,
                    &opts(1 << 30, 0),
                    &mut [&mut fnn, &mut ft],
                    &Control::new(),
                )
                .unwrap_err();
            assert!(matches!(e, Error::Io(_)), "{e}");
            drop((fnn, ft));
            match old {
                None => assert_eq!(listing(&dir), ["t.npy"]),
                Some(o) => {
                    assert_eq!(listing(&dir), ["n.npy", "t.npy"]);
                    assert_eq!(std::fs::read(&pn).unwrap(), o, "the old file is put back");
                }
            }
        }
        // both succeed: both complete, the old file replaced, nothing else left
        std::fs::remove_dir_all(&pt).unwrap();
        let mut fnn = NpyFile::<f64>::create(&pn, n, n).unwrap();
        let mut ft = NpyFile::<f64>::create(&pt, n, n).unwrap();
        nw.kernel_to(
            x.as_ref(),
            None,
            Get::BOTH,
            &opts(RESERVE_BYTES + 3_000_000, 0),
            &mut [&mut fnn, &mut ft],
            &Control::new(),
        )
        .unwrap();
        drop((fnn, ft));
        assert_eq!(listing(&dir), ["n.npy", "t.npy"]);
        let hl = npy_header::<f64>(n, n).len();
        for (p, w) in [(&pn, want.nngp.as_ref().unwrap()), (&pt, want.ntk.as_ref().unwrap())] {
            let bytes = std::fs::read(p).unwrap();
            let got: Vec<f64> = bytes[hl..]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(&got, w);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pages_are_released_only_in_shared_file_mappings() {
        use std::os::fd::AsRawFd;
        // ordinary (private, anonymous) memory: never released, whatever the caller asks
        let mut v = vec![1.0f64; 1 << 16];
        assert!(!crate::memory::is_shared_file_mapping(v.as_ptr() as usize, 8 << 16));
        let s = unsafe { MemorySink::from_raw(v.as_mut_ptr(), 256, 256, true) };
        assert!(!s.releases_pages());
        let _ = s;
        let dir = temp_dir("maps");
        let len = 1usize << 20;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("m.bin"))
            .unwrap();
        file.set_len(len as u64).unwrap();
        for (flags, shared) in [(libc::MAP_SHARED, true), (libc::MAP_PRIVATE, false)] {
            // SAFETY: a fresh mapping of the file's `len` bytes, unmapped below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags,
                    file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            let a = p as usize;
            assert_eq!(crate::memory::is_shared_file_mapping(a, len), shared);
            assert_eq!(crate::memory::is_shared_file_mapping(a + 4096, 8192), shared);
            // running past the mapping's end is never accepted
            assert!(!crate::memory::is_shared_file_mapping(a, len + 4096 * 1024));
            let (n, x) = (128, data(128, 3, 12));
            // SAFETY: 128 × 128 f64 = 128 KiB inside the mapping, used by this sink alone.
            let mut sink = unsafe { MemorySink::from_raw(p as *mut f64, n, n, true) };
            assert_eq!(sink.releases_pages(), shared);
            let nw = net();
            nw.kernel_to(
                x.as_ref(),
                None,
                Get::NTK,
                &opts(1 << 30, 0),
                &mut [&mut sink],
                &Control::new(),
            )
            .unwrap();
            let _ = sink;
            let want = nw
                .kernel(x.as_ref(), None, Get::NTK, &KernelOptions::default(), &Control::new())
                .unwrap()
                .ntk
                .unwrap();
            // SAFETY: the mapping is alive and was just written.
            let got = unsafe { std::slice::from_raw_parts(p as *const f64, n * n) };
            assert_eq!(got, &want[..]);
            unsafe {
                libc::munmap(p, len);
            }
        }
        assert!(!crate::memory::is_shared_file_mapping(0, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn npy_file_is_complete_or_absent() {
        let dir = std::env::temp_dir().join(format!("ntkrs-out-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.npy");
        let nw = net();
        let n = 600;
        let x = data(n, 5, 4);
        let x32 = faer::Mat::<f32>::from_fn(n, 5, |i, j| x[(i, j)] as f32);
        let ctl = Control::new();
        ctl.cancel();
        let mut f = NpyFile::<f32>::create(&path, n, n).unwrap();
        let e = nw
            .kernel_to(x32.as_ref(), None, Get::NTK, &opts(1 << 30, 0), &mut [&mut f], &ctl)
            .unwrap_err();
        assert_eq!(e, Error::Cancelled);
        let partial = f.partial_path().to_path_buf();
        drop(f);
        assert!(!path.exists() && !partial.exists());
        let mut f = NpyFile::<f32>::create(&path, n, n).unwrap();
        let partial = f.partial_path().to_path_buf();
        let stats = nw
            .kernel_to(
                x32.as_ref(),
                None,
                Get::NTK,
                &opts(RESERVE_BYTES + 1_000_000, 1),
                &mut [&mut f],
                &Control::new(),
            )
            .unwrap();
        assert_eq!(stats.panels, 3, "{stats:?}");
        assert!(!partial.exists());
        drop(f);
        let bytes = std::fs::read(&path).unwrap();
        let hl = npy_header::<f32>(n, n).len();
        assert_eq!(bytes.len(), hl + n * n * 4);
        let want = nw
            .kernel(x32.as_ref(), None, Get::NTK, &KernelOptions::default(), &Control::new())
            .unwrap()
            .ntk
            .unwrap();
        let got: Vec<f32> = bytes[hl..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Rendering the audit `Report`: CSV (Excel), HTML with charts, console table; English and Chinese.

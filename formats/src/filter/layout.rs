//! `PageLayout`: where `struct page`'s fields are, which flag bits and page-type values mean
//! what, and how compound order and hugetlb are found — all from VMCOREINFO (4.2, 4.6), keyed on
//! which keys are present rather than on a guessed kernel version.

use super::error::FilterError;
use crate::vmcoreinfo::VmcoreInfo;

/// Largest `SIZE(page)` accepted (real kernels: 56–80 bytes).
pub const MAX_STRUCT_PAGE: u64 = 1024;

/// Where compound order and the hugetlb mark live (the kernel-version table of 4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompoundScheme {
    /// 6.9+: order in `page[1].flags & 0xff`; hugetlb when the head's `_mapcount` word is this
    /// page type (`NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)`).
    HugetlbType { value: u32 },
    /// 6.6 – 6.8: order in `page[1].flags & 0xff`; hugetlb when bit `NUMBER(PG_hugetlb)` of
    /// `page[1].flags` is set.
    HugetlbFlag { bit: u32 },
    /// 6.3 – 6.5: u8 order and destructor at these offsets of `page[1]` (from
    /// `OFFSET(folio._folio_order/_folio_dtor)` minus `SIZE(page)`).
    Folio {
        order: usize,
        dtor: Option<usize>,
        hugetlb_dtor: Option<u64>,
    },
    /// 4.4 – 6.2: order and destructor at `OFFSET(page.compound_order/compound_dtor)` of
    /// `page[1]`; u16 before 4.16 (`wide`), u8 since.
    Page {
        order: usize,
        dtor: Option<usize>,
        wide: bool,
        hugetlb_dtor: Option<u64>,
    },
    /// No key tells: every page has order 0 and none is hugetlb.
    Unknown,
}

/// The `_mapcount` (`page_type`) values that mark page types; each absent if not exported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageTypes {
    pub buddy: Option<u32>,
    pub offline: Option<u32>,
    pub slab: Option<u32>,
    pub unaccepted: Option<u32>,
}

/// Bit numbers in `page.flags` (`head_mask` is a mask); each absent if not exported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlagBits {
    pub lru: Option<u32>,
    pub private: Option<u32>,
    pub swapcache: Option<u32>,
    pub swapbacked: Option<u32>,
    pub slab: Option<u32>,
    pub hwpoison: Option<u32>,
    pub head_mask: Option<u64>,
}

/// Everything classification needs to know about `struct page` on the crashed kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageLayout {
    /// `SIZE(page)`.
    pub size: usize,
    pub flags: usize,
    pub mapping: usize,
    pub mapcount: Option<usize>,
    pub private: Option<usize>,
    pub compound_head: Option<usize>,
    pub bits: FlagBits,
    pub types: PageTypes,
    pub compound: CompoundScheme,
    /// `LENGTH(zone.free_area)`: buddy orders are below it.
    pub free_area_len: Option<u64>,
}

const NEEDED: &str = "filtering pages by their struct page";

impl PageLayout {
    /// Reads the layout. Errs when a key every filtering needs is missing (4.2: `SIZE(page)`,
    /// `OFFSET(page.flags)`, `OFFSET(page._refcount)` or `OFFSET(page._count)`,
    /// `OFFSET(page.mapping)`) or a field lies outside `SIZE(page)`.
    pub fn from_info(info: &VmcoreInfo) -> Result<PageLayout, FilterError> {
        let size = info
            .size("page")
            .ok_or(FilterError::missing("SIZE(page)", NEEDED))?;
        if !(16..=MAX_STRUCT_PAGE).contains(&size) {
            return Err(FilterError::bad("SIZE(page)", size, "not in 16..=1024"));
        }
        let field =
            |key: &'static str, name: &str, width: u64| -> Result<Option<usize>, FilterError> {
                match info.offset(name) {
                    None => Ok(None),
                    Some(off) if off.checked_add(width).is_some_and(|end| end <= size) => {
                        Ok(Some(off as usize))
                    }
                    Some(off) => Err(FilterError::bad(key, off, "field lies outside SIZE(page)")),
                }
            };
        let flags = field("OFFSET(page.flags)", "page.flags", 8)?
            .ok_or(FilterError::missing("OFFSET(page.flags)", NEEDED))?;
        let mapping = field("OFFSET(page.mapping)", "page.mapping", 8)?
            .ok_or(FilterError::missing("OFFSET(page.mapping)", NEEDED))?;
        if info.offset("page._refcount").is_none() && info.offset("page._count").is_none() {
            return Err(FilterError::missing("OFFSET(page._refcount)", NEEDED));
        }
        let compound_head = match field("OFFSET(page.compound_head)", "page.compound_head", 8)? {
            Some(off) => Some(off),
            None => field("OFFSET(page.compound_info)", "page.compound_info", 8)?,
        };
        Ok(PageLayout {
            size: size as usize,
            flags,
            mapping,
            mapcount: field("OFFSET(page._mapcount)", "page._mapcount", 4)?,
            private: field("OFFSET(page.private)", "page.private", 8)?,
            compound_head,
            bits: flag_bits(info),
            types: PageTypes {
                buddy: type_value(info, "PAGE_BUDDY_MAPCOUNT_VALUE"),
                offline: type_value(info, "PAGE_OFFLINE_MAPCOUNT_VALUE"),
                slab: type_value(info, "PAGE_SLAB_MAPCOUNT_VALUE"),
                unaccepted: type_value(info, "PAGE_UNACCEPTED_MAPCOUNT_VALUE"),
            },
            compound: compound_scheme(info, size)?,
            free_area_len: info.length("zone.free_area"),
        })
    }

    /// Buddy detection (4.6 rule 1) needs `OFFSET(page.private)`, `OFFSET(page._mapcount)` and
    /// `NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)`; without it free pages come from the free lists (4.8).
    pub fn buddy_detection(&self) -> bool {
        self.private.is_some() && self.mapcount.is_some() && self.types.buddy.is_some()
    }
}

/// `NUMBER(name)` as a bit number 0..=63.
fn bit_number(info: &VmcoreInfo, name: &str) -> Option<u32> {
    info.number(name)
        .filter(|n| (0..64).contains(n))
        .map(|n| n as u32)
}

fn flag_bits(info: &VmcoreInfo) -> FlagBits {
    FlagBits {
        lru: bit_number(info, "PG_lru"),
        private: bit_number(info, "PG_private"),
        swapcache: bit_number(info, "PG_swapcache"),
        swapbacked: bit_number(info, "PG_swapbacked"),
        slab: bit_number(info, "PG_slab"),
        hwpoison: bit_number(info, "PG_hwpoison"),
        head_mask: info.number("PG_head_mask").map(|n| n as u64),
    }
}

/// The low 32 bits of `NUMBER(name)`: page-type values print negative or as large positives.
fn type_value(info: &VmcoreInfo, name: &str) -> Option<u32> {
    info.number(name).map(|n| n as u32)
}

/// Which row of the 4.6 compound table applies, by key presence.
fn compound_scheme(info: &VmcoreInfo, page_size: u64) -> Result<CompoundScheme, FilterError> {
    if let Some(value) = type_value(info, "PAGE_HUGETLB_MAPCOUNT_VALUE") {
        return Ok(CompoundScheme::HugetlbType { value });
    }
    if let Some(bit) = bit_number(info, "PG_hugetlb") {
        return Ok(CompoundScheme::HugetlbFlag { bit });
    }
    let hugetlb_dtor = info.number("HUGETLB_PAGE_DTOR").map(|n| n as u64);
    // Folio fields are offsets from the folio, i.e. from the head page; page[1] starts at
    // SIZE(page). They must lie inside page[1].
    let in_second = |key: &'static str, off: u64| -> Result<usize, FilterError> {
        off.checked_sub(page_size)
            .filter(|&rel| rel < page_size)
            .map(|rel| rel as usize)
            .ok_or(FilterError::bad(
                key,
                off,
                "not inside the folio's second struct page",
            ))
    };
    if let Some(order) = info.offset("folio._folio_order") {
        let order = in_second("OFFSET(folio._folio_order)", order)?;
        let dtor = match info.offset("folio._folio_dtor") {
            Some(off) => Some(in_second("OFFSET(folio._folio_dtor)", off)?),
            None => None,
        };
        return Ok(CompoundScheme::Folio {
            order,
            dtor,
            hugetlb_dtor,
        });
    }
    if let Some(order) = info.offset("page.compound_order") {
        let wide = kernel_version(info).is_some_and(|v| v < (4, 16));
        let width = if wide { 2 } else { 1 };
        let inside = |key: &'static str, off: u64| -> Result<usize, FilterError> {
            off.checked_add(width)
                .filter(|&end| end <= page_size)
                .map(|_| off as usize)
                .ok_or(FilterError::bad(key, off, "field lies outside SIZE(page)"))
        };
        let order = inside("OFFSET(page.compound_order)", order)?;
        let dtor = match info.offset("page.compound_dtor") {
            Some(off) => Some(inside("OFFSET(page.compound_dtor)", off)?),
            None => None,
        };
        return Ok(CompoundScheme::Page {
            order,
            dtor,
            wide,
            hugetlb_dtor,
        });
    }
    Ok(CompoundScheme::Unknown)
}

/// `(major, minor)` from `OSRELEASE` (e.g. `6.1.0-56-cloud-amd64` → (6, 1)). Only the compound
/// field width change of 4.16 depends on it, as in makedumpfile.
pub fn kernel_version(info: &VmcoreInfo) -> Option<(u32, u32)> {
    let release = info.osrelease()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "OSRELEASE=6.1.0-56-cloud-amd64\nSIZE(page)=64\nOFFSET(page.flags)=0\n\
        OFFSET(page._refcount)=52\nOFFSET(page.mapping)=24\nOFFSET(page._mapcount)=48\n\
        OFFSET(page.private)=40\nOFFSET(page.compound_head)=8\n";

    fn layout(extra: &str) -> Result<PageLayout, FilterError> {
        PageLayout::from_info(&VmcoreInfo::parse(format!("{BASE}{extra}").as_bytes()))
    }

    #[test]
    fn compound_scheme_follows_key_presence() {
        let l = layout("OFFSET(page.compound_dtor)=16\nOFFSET(page.compound_order)=17\nNUMBER(HUGETLB_PAGE_DTOR)=2\n");
        let want = CompoundScheme::Page {
            order: 17,
            dtor: Some(16),
            wide: false,
            hugetlb_dtor: Some(2),
        };
        assert_eq!(l.expect("6.1").compound, want);
        let l = layout("OFFSET(folio._folio_dtor)=80\nOFFSET(folio._folio_order)=81\nNUMBER(HUGETLB_PAGE_DTOR)=2\n");
        let want = CompoundScheme::Folio {
            order: 17,
            dtor: Some(16),
            hugetlb_dtor: Some(2),
        };
        assert_eq!(l.expect("6.3").compound, want);
        let l = layout("NUMBER(PG_hugetlb)=6\nOFFSET(page.compound_order)=17\n").expect("6.6");
        assert_eq!(l.compound, CompoundScheme::HugetlbFlag { bit: 6 });
        let l = layout("NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=-2049\nNUMBER(PG_hugetlb)=6\n");
        let want = CompoundScheme::HugetlbType { value: 0xffff_f7ff };
        assert_eq!(l.expect("6.9").compound, want);
        assert_eq!(layout("").expect("none").compound, CompoundScheme::Unknown);
    }

    #[test]
    fn old_kernels_have_wide_compound_fields() {
        let text = BASE.replace("6.1.0-56-cloud-amd64", "4.15.0-1");
        let info = VmcoreInfo::parse(format!("{text}OFFSET(page.compound_order)=34\n").as_bytes());
        let l = PageLayout::from_info(&info).expect("4.15");
        assert!(matches!(
            l.compound,
            CompoundScheme::Page { wide: true, .. }
        ));
        assert_eq!(kernel_version(&info), Some((4, 15)));
    }

    #[test]
    fn missing_required_keys_are_named() {
        let info = VmcoreInfo::parse(BASE.replace("SIZE(page)=64\n", "").as_bytes());
        let err = PageLayout::from_info(&info).expect_err("no SIZE(page)");
        assert!(err.to_string().contains("SIZE(page)"), "{err}");
        let info = VmcoreInfo::parse(BASE.replace("OFFSET(page._refcount)=52\n", "").as_bytes());
        let err = PageLayout::from_info(&info).expect_err("no refcount");
        assert!(err.to_string().contains("OFFSET(page._refcount)"), "{err}");
        let info = VmcoreInfo::parse(BASE.replace("=24", "=60").as_bytes());
        let err = PageLayout::from_info(&info).expect_err("mapping outside");
        assert!(err.to_string().contains("OFFSET(page.mapping)"), "{err}");
    }

    #[test]
    fn page_type_values_keep_their_low_32_bits() {
        let l = layout("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\nNUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=4043309056\n")
            .expect("types");
        assert_eq!(l.types.buddy, Some(0xffff_ff7f));
        assert_eq!(l.types.offline, Some(0xf100_0000));
        assert!(l.buddy_detection());
        let l = layout("").expect("no buddy value");
        assert!(!l.buddy_detection());
    }
}

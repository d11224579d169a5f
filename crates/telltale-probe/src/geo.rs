//! Where a hop is: latitude, longitude, city and country from a MaxMind-format City
//! database, ASN and organisation from an ASN database (GeoLite2 or DB-IP Lite, read with
//! the `maxminddb` crate). Either file may be missing: then hops carry no location, and
//! probing works as before.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{Reader, geoip2};

/// What the databases say of one address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// City name (English).
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Latitude, degrees.
    pub latitude: Option<f64>,
    /// Longitude, degrees.
    pub longitude: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
}

/// A database that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("opening the geolocation database {path}: {reason}")]
pub struct GeoError {
    /// The file.
    pub path: PathBuf,
    /// What the reader said.
    pub reason: String,
}

/// The City and ASN databases (one file may hold both, as DB-IP's combined files do).
#[derive(Debug, Default)]
pub struct Geo {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

fn open(path: &Path) -> Result<Reader<Vec<u8>>, GeoError> {
    Reader::open_readfile(path).map_err(|e| GeoError {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

impl Geo {
    /// Opens the files given; `None` for one that is not used.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<Self, GeoError> {
        Ok(Self {
            city: city.map(open).transpose()?,
            asn: asn.map(open).transpose()?,
        })
    }

    /// Whether any database is open.
    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.asn.is_none()
    }

    /// What the databases hold for `addr`: nothing for an address they do not have.
    pub fn locate(&self, addr: IpAddr) -> Location {
        let mut out = Location::default();
        if let Some(city) = self
            .city
            .as_ref()
            .and_then(|r| r.lookup(addr).ok()?.decode::<geoip2::City>().ok().flatten())
        {
            out.city = city.city.names.english.map(str::to_owned);
            out.country = city.country.iso_code.map(str::to_owned);
            out.latitude = city.location.latitude;
            out.longitude = city.location.longitude;
        }
        if let Some(asn) = self
            .asn
            .as_ref()
            .and_then(|r| r.lookup(addr).ok()?.decode::<geoip2::Asn>().ok().flatten())
        {
            out.asn = asn.autonomous_system_number;
            out.as_org = asn.autonomous_system_organization.map(str::to_owned);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb_writer::Database;
    use maxminddb_writer::paths::IpAddrWithMask;

    #[derive(serde::Serialize)]
    struct Asn {
        autonomous_system_number: u32,
        autonomous_system_organization: &'static str,
    }

    fn asn_db(dir: &Path) -> PathBuf {
        let mut db = Database::default();
        db.metadata.database_type = "GeoLite2-ASN".into();
        db.metadata.binary_format_major_version = 2;
        let record = db
            .insert_value(Asn {
                autonomous_system_number: 64_512,
                autonomous_system_organization: "Example",
            })
            .unwrap();
        db.insert_node("198.51.100.0/24".parse::<IpAddrWithMask>().unwrap(), record);
        let path = dir.join("asn.mmdb");
        db.write_to(std::fs::File::create(&path).unwrap()).unwrap();
        path
    }

    #[test]
    fn an_asn_database_names_the_network_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("telltale-geo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let geo = Geo::open(None, Some(&asn_db(&dir))).unwrap();
        let hit = geo.locate("198.51.100.7".parse().unwrap());
        assert_eq!(hit.asn, Some(64_512));
        assert_eq!(hit.as_org.as_deref(), Some("Example"));
        assert_eq!(hit.city, None, "no City database");
        assert_eq!(
            geo.locate("203.0.113.1".parse().unwrap()),
            Location::default()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let path = std::env::temp_dir().join(format!("telltale-not-mmdb-{}", std::process::id()));
        std::fs::write(&path, "not a database").unwrap();
        let e = Geo::open(Some(&path), None).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(e.to_string().contains(path.to_str().unwrap()), "{e}");
    }
}

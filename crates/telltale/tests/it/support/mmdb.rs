//! Small GeoLite2-shaped `.mmdb` files for the routed test network, written with
//! `maxminddb-writer` (no download): City and ASN records for `10.<net>.{1,2,3}.0/24`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb_writer::Database;
use maxminddb_writer::metadata::IpVersion;
use maxminddb_writer::paths::IpAddrWithMask;
use serde::Serialize;

#[derive(Serialize)]
struct Names {
    en: &'static str,
}

#[derive(Serialize)]
struct CityName {
    names: Names,
}

#[derive(Serialize)]
struct Country {
    iso_code: &'static str,
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Serialize)]
struct City {
    city: CityName,
    country: Country,
    location: Location,
}

#[derive(Serialize)]
struct Asn {
    autonomous_system_number: u32,
    autonomous_system_organization: &'static str,
}

fn database(kind: &str) -> Database {
    let mut db = Database::default();
    db.metadata.ip_version = IpVersion::V4;
    db.metadata.database_type = kind.to_owned();
    db.metadata.languages = vec!["en".into()];
    db.metadata.binary_format_major_version = 2;
    db
}

fn net(net: u8, subnet: u8) -> IpAddrWithMask {
    IpAddrWithMask::new(IpAddr::from([10, net, subnet, 0]), 24)
}

fn write(db: &Database, path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    db.write_to(std::io::BufWriter::new(file)).unwrap();
}

/// Writes `city.mmdb` (subnet 1 Frankfurt, 2 Amsterdam, 3 London) and `asn.mmdb`
/// (subnets 1 and 3 only) into `dir`.
pub fn write_test_databases(dir: &Path, n: u8) -> (PathBuf, PathBuf) {
    let mut city = database("GeoLite2-City");
    for (subnet, name, iso, lat, lon) in [
        (1, "Frankfurt am Main", "DE", 50.1109, 8.6821),
        (2, "Amsterdam", "NL", 52.3676, 4.9041),
        (3, "London", "GB", 51.5072, -0.1276),
    ] {
        let record = city
            .insert_value(City {
                city: CityName {
                    names: Names { en: name },
                },
                country: Country { iso_code: iso },
                location: Location {
                    latitude: lat,
                    longitude: lon,
                },
            })
            .unwrap();
        city.insert_node(net(n, subnet), record);
    }
    let mut asn = database("GeoLite2-ASN");
    for (subnet, number, org) in [(1, 64_501, "Test Transit 1"), (3, 64_503, "Test Hosting")] {
        let record = asn
            .insert_value(Asn {
                autonomous_system_number: number,
                autonomous_system_organization: org,
            })
            .unwrap();
        asn.insert_node(net(n, subnet), record);
    }
    let (city_path, asn_path) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    write(&city, &city_path);
    write(&asn, &asn_path);
    (city_path, asn_path)
}

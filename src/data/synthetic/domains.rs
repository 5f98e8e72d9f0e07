//! The eight synthetic domains: their tables, columns and what each column's values look like.
//!
//! Every table starts with its integer primary key `<table>_id`; a table is listed after the
//! tables its foreign keys point to, so rows can be generated in order.

use super::words::*;

/// What a column holds and how its values are drawn.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// The integer primary key, 1..=rows.
    Id,
    /// A foreign key to the primary key of the named table.
    Fk(&'static str),
    /// "First Last".
    Person,
    /// An address made from the row's `Person` column (unique thanks to the row id).
    Email,
    City,
    /// One of the words.
    Choice(&'static [&'static str]),
    /// "Word1 Word2", one from each list.
    Compose(&'static [&'static str], &'static [&'static str]),
    /// An integer in the inclusive range.
    Int(i64, i64),
    /// A year in the inclusive range: compared and averaged, never summed.
    Year(i64, i64),
    /// An amount with two decimals in the inclusive whole-unit range.
    Real(i64, i64),
    /// A `YYYY-MM-DD` date with the year in the inclusive range.
    Date(i32, i32),
}

impl Kind {
    /// The column type `tables.json` declares.
    pub fn spider_type(self) -> &'static str {
        match self {
            Kind::Id | Kind::Fk(_) | Kind::Int(..) | Kind::Year(..) | Kind::Real(..) => "number",
            Kind::Date(..) => "time",
            _ => "text",
        }
    }

    /// The SQLite declared type.
    pub fn sql_type(self) -> &'static str {
        match self {
            Kind::Id | Kind::Fk(_) | Kind::Int(..) | Kind::Year(..) => "INTEGER",
            Kind::Real(..) => "REAL",
            _ => "TEXT",
        }
    }

    /// A value the questions can name and group by: a short list of repeated words.
    pub fn is_categorical(self) -> bool {
        matches!(self, Kind::City | Kind::Choice(_))
    }

    /// A value that averages and comparisons make sense on.
    pub fn is_numeric(self) -> bool {
        matches!(self, Kind::Int(..) | Kind::Year(..) | Kind::Real(..))
    }

    /// A quantity whose total means something (not a year).
    pub fn is_summable(self) -> bool {
        matches!(self, Kind::Int(..) | Kind::Real(..))
    }

    /// A text that names a row (a person, a title).
    pub fn is_label(self) -> bool {
        matches!(self, Kind::Person | Kind::Compose(..))
    }

    /// Neither key nor foreign key: something a question asks about.
    pub fn is_attribute(self) -> bool {
        !matches!(self, Kind::Id | Kind::Fk(_))
    }
}

#[derive(Debug)]
pub struct ColumnDef {
    /// Name in the SQLite file.
    pub name: &'static str,
    pub kind: Kind,
}

#[derive(Debug)]
pub struct TableDef {
    /// Name in the SQLite file, also the singular noun used in questions.
    pub name: &'static str,
    pub plural: &'static str,
    /// Inclusive range of the row count.
    pub rows: (usize, usize),
    pub columns: &'static [ColumnDef],
}

#[derive(Debug)]
pub struct Domain {
    pub db_id: &'static str,
    pub tables: &'static [TableDef],
}

impl TableDef {
    /// The natural name of a column: its name with spaces (`hire_date` → `hire date`).
    pub fn natural(&self, column: usize) -> String {
        self.columns[column].name.replace('_', " ")
    }

    /// The singular noun in questions (`order_item` → `order item`).
    pub fn singular(&self) -> String {
        self.name.replace('_', " ")
    }
}

const fn c(name: &'static str, kind: Kind) -> ColumnDef {
    ColumnDef { name, kind }
}

use Kind::*;

/// All domains; the config decides which go to train and which to dev.
pub const DOMAINS: &[Domain] = &[
    Domain {
        db_id: "school",
        tables: &[
            TableDef {
                name: "department",
                plural: "departments",
                rows: (20, 30),
                columns: &[
                    c("department_id", Id),
                    c("name", Compose(FIELD_ADJECTIVES, FIELDS)),
                    c("building", Choice(BUILDINGS)),
                    c("budget", Int(50_000, 2_000_000)),
                ],
            },
            TableDef {
                name: "teacher",
                plural: "teachers",
                rows: (30, 80),
                columns: &[
                    c("teacher_id", Id),
                    c("name", Person),
                    c("department_id", Fk("department")),
                    c("salary", Int(30_000, 120_000)),
                    c("hire_date", Date(1990, 2023)),
                    c("city", City),
                ],
            },
            TableDef {
                name: "student",
                plural: "students",
                rows: (80, 200),
                columns: &[
                    c("student_id", Id),
                    c("name", Person),
                    c("email", Email),
                    c("city", City),
                    c("age", Int(17, 30)),
                    c("department_id", Fk("department")),
                ],
            },
            TableDef {
                name: "course",
                plural: "courses",
                rows: (30, 80),
                columns: &[
                    c("course_id", Id),
                    c("title", Compose(FIELD_ADJECTIVES, FIELDS)),
                    c("credits", Int(1, 6)),
                    c(
                        "level",
                        Choice(&["introductory", "intermediate", "advanced"]),
                    ),
                    c("teacher_id", Fk("teacher")),
                ],
            },
        ],
    },
    Domain {
        db_id: "library",
        tables: &[
            TableDef {
                name: "author",
                plural: "authors",
                rows: (20, 60),
                columns: &[
                    c("author_id", Id),
                    c("name", Person),
                    c("nationality", Choice(COUNTRIES)),
                    c("birth_year", Year(1900, 2000)),
                ],
            },
            TableDef {
                name: "book",
                plural: "books",
                rows: (60, 200),
                columns: &[
                    c("book_id", Id),
                    c("title", Compose(TITLE_ADJECTIVES, TITLE_NOUNS)),
                    c("author_id", Fk("author")),
                    c("genre", Choice(GENRES)),
                    c("pages", Int(80, 900)),
                    c("published_date", Date(1950, 2023)),
                ],
            },
            TableDef {
                name: "member",
                plural: "members",
                rows: (40, 150),
                columns: &[
                    c("member_id", Id),
                    c("name", Person),
                    c("email", Email),
                    c("city", City),
                    c("join_date", Date(2010, 2024)),
                ],
            },
            TableDef {
                name: "loan",
                plural: "loans",
                rows: (80, 200),
                columns: &[
                    c("loan_id", Id),
                    c("book_id", Fk("book")),
                    c("member_id", Fk("member")),
                    c("loan_date", Date(2020, 2024)),
                    c("days", Int(1, 60)),
                    c("status", Choice(&["returned", "open", "overdue"])),
                ],
            },
        ],
    },
    Domain {
        db_id: "shop",
        tables: &[
            TableDef {
                name: "customer",
                plural: "customers",
                rows: (40, 150),
                columns: &[
                    c("customer_id", Id),
                    c("name", Person),
                    c("email", Email),
                    c("city", City),
                    c("signup_date", Date(2015, 2024)),
                ],
            },
            TableDef {
                name: "product",
                plural: "products",
                rows: (30, 100),
                columns: &[
                    c("product_id", Id),
                    c("name", Compose(PRODUCT_ADJECTIVES, PRODUCT_NOUNS)),
                    c("category", Choice(PRODUCT_CATEGORIES)),
                    c("price", Real(2, 500)),
                    c("stock", Int(0, 300)),
                ],
            },
            TableDef {
                name: "purchase",
                plural: "purchases",
                rows: (80, 200),
                columns: &[
                    c("purchase_id", Id),
                    c("customer_id", Fk("customer")),
                    c("purchase_date", Date(2020, 2024)),
                    c("status", Choice(ORDER_STATUSES)),
                    c("total", Real(5, 2000)),
                ],
            },
            TableDef {
                name: "purchase_item",
                plural: "purchase items",
                rows: (100, 200),
                columns: &[
                    c("purchase_item_id", Id),
                    c("purchase_id", Fk("purchase")),
                    c("product_id", Fk("product")),
                    c("quantity", Int(1, 10)),
                ],
            },
        ],
    },
    Domain {
        db_id: "hospital",
        tables: &[
            TableDef {
                name: "ward",
                plural: "wards",
                rows: (20, 30),
                columns: &[
                    c("ward_id", Id),
                    c("name", Compose(WARD_NAMES, WARD_KINDS)),
                    c("floor", Int(1, 8)),
                    c("beds", Int(8, 60)),
                ],
            },
            TableDef {
                name: "doctor",
                plural: "doctors",
                rows: (30, 80),
                columns: &[
                    c("doctor_id", Id),
                    c("name", Person),
                    c("specialty", Choice(SPECIALTIES)),
                    c("ward_id", Fk("ward")),
                    c("salary", Int(60_000, 250_000)),
                ],
            },
            TableDef {
                name: "patient",
                plural: "patients",
                rows: (80, 200),
                columns: &[
                    c("patient_id", Id),
                    c("name", Person),
                    c("city", City),
                    c("gender", Choice(GENDERS)),
                    c("birth_date", Date(1940, 2020)),
                ],
            },
            TableDef {
                name: "appointment",
                plural: "appointments",
                rows: (100, 200),
                columns: &[
                    c("appointment_id", Id),
                    c("patient_id", Fk("patient")),
                    c("doctor_id", Fk("doctor")),
                    c("appointment_date", Date(2021, 2024)),
                    c("cost", Real(20, 900)),
                ],
            },
        ],
    },
    Domain {
        db_id: "airline",
        tables: &[
            TableDef {
                name: "airport",
                plural: "airports",
                rows: (20, 40),
                columns: &[
                    c("airport_id", Id),
                    c("name", Compose(CITIES, AIRPORT_WORDS)),
                    c("country", Choice(COUNTRIES)),
                    c("runways", Int(1, 6)),
                ],
            },
            TableDef {
                name: "aircraft",
                plural: "aircraft",
                rows: (20, 50),
                columns: &[
                    c("aircraft_id", Id),
                    c("model", Choice(AIRCRAFT_MODELS)),
                    c("capacity", Int(50, 400)),
                    c("built_year", Year(1995, 2023)),
                ],
            },
            TableDef {
                name: "pilot",
                plural: "pilots",
                rows: (30, 80),
                columns: &[
                    c("pilot_id", Id),
                    c("name", Person),
                    c("rank", Choice(PILOT_RANKS)),
                    c("age", Int(24, 64)),
                    c("flight_hours", Int(500, 20_000)),
                ],
            },
            TableDef {
                name: "flight",
                plural: "flights",
                rows: (100, 200),
                columns: &[
                    c("flight_id", Id),
                    c("origin_airport_id", Fk("airport")),
                    c("destination_airport_id", Fk("airport")),
                    c("aircraft_id", Fk("aircraft")),
                    c("pilot_id", Fk("pilot")),
                    c("departure_date", Date(2023, 2024)),
                    c("price", Real(40, 1500)),
                ],
            },
        ],
    },
    Domain {
        db_id: "music",
        tables: &[
            TableDef {
                name: "artist",
                plural: "artists",
                rows: (20, 50),
                columns: &[
                    c("artist_id", Id),
                    c("name", Person),
                    c("country", Choice(COUNTRIES)),
                    c("debut_year", Year(1960, 2022)),
                ],
            },
            TableDef {
                name: "album",
                plural: "albums",
                rows: (40, 120),
                columns: &[
                    c("album_id", Id),
                    c("title", Compose(TITLE_ADJECTIVES, TITLE_NOUNS)),
                    c("artist_id", Fk("artist")),
                    c("genre", Choice(MUSIC_GENRES)),
                    c("release_date", Date(1965, 2024)),
                ],
            },
            TableDef {
                name: "song",
                plural: "songs",
                rows: (100, 200),
                columns: &[
                    c("song_id", Id),
                    c("title", Compose(TITLE_ADJECTIVES, TITLE_NOUNS)),
                    c("album_id", Fk("album")),
                    c("duration", Int(120, 420)),
                    c("plays", Int(1_000, 5_000_000)),
                ],
            },
        ],
    },
    Domain {
        db_id: "football",
        tables: &[
            TableDef {
                name: "team",
                plural: "teams",
                rows: (20, 30),
                columns: &[
                    c("team_id", Id),
                    c("name", Compose(CITIES, TEAM_MASCOTS)),
                    c("city", City),
                    c("founded", Year(1880, 2010)),
                ],
            },
            TableDef {
                name: "player",
                plural: "players",
                rows: (80, 200),
                columns: &[
                    c("player_id", Id),
                    c("name", Person),
                    c("team_id", Fk("team")),
                    c("position", Choice(POSITIONS)),
                    c("age", Int(17, 38)),
                    c("goals", Int(0, 40)),
                ],
            },
            TableDef {
                name: "game",
                plural: "games",
                rows: (60, 200),
                columns: &[
                    c("game_id", Id),
                    c("home_team_id", Fk("team")),
                    c("away_team_id", Fk("team")),
                    c("game_date", Date(2022, 2024)),
                    c("attendance", Int(1_000, 80_000)),
                    c("weather", Choice(&["sunny", "rainy", "cloudy", "snowy"])),
                ],
            },
        ],
    },
    Domain {
        db_id: "company",
        tables: &[
            TableDef {
                name: "office",
                plural: "offices",
                rows: (20, 30),
                columns: &[
                    c("office_id", Id),
                    c("city", City),
                    c("country", Choice(COUNTRIES)),
                    c("opened_date", Date(1990, 2022)),
                ],
            },
            TableDef {
                name: "employee",
                plural: "employees",
                rows: (80, 200),
                columns: &[
                    c("employee_id", Id),
                    c("name", Person),
                    c("email", Email),
                    c("job_title", Choice(JOB_TITLES)),
                    c("salary", Int(30_000, 180_000)),
                    c("hire_date", Date(2000, 2024)),
                    c("office_id", Fk("office")),
                ],
            },
            TableDef {
                name: "project",
                plural: "projects",
                rows: (20, 60),
                columns: &[
                    c("project_id", Id),
                    c("name", Compose(PROJECT_WORDS, PROJECT_KINDS)),
                    c("budget", Int(10_000, 900_000)),
                    c("office_id", Fk("office")),
                ],
            },
            TableDef {
                name: "assignment",
                plural: "assignments",
                rows: (100, 200),
                columns: &[
                    c("assignment_id", Id),
                    c("employee_id", Fk("employee")),
                    c("project_id", Fk("project")),
                    c("hours", Int(10, 400)),
                    c("role", Choice(&["lead", "member", "reviewer"])),
                ],
            },
        ],
    },
];

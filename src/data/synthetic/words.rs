//! Embedded word lists the synthetic databases draw their values from. Kept plain and
//! international so questions read naturally and values never need escaping beyond `'`.

pub const FIRST_NAMES: &[&str] = &[
    "Alice", "Bruno", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kamala", "Liam", "Maria", "Nikolai", "Olivia", "Pedro", "Qiu", "Rosa", "Samuel", "Tara",
    "Umar", "Vera", "William", "Xenia", "Yusuf", "Zoe", "Amara", "Bjorn", "Carmen", "Dmitri",
    "Emma", "Felix", "Giulia", "Hannah", "Ivan", "Julia", "Kenji", "Lena", "Mateo", "Nora",
];

pub const LAST_NAMES: &[&str] = &[
    "Smith", "Garcia", "Muller", "Rossi", "Tanaka", "Kowalski", "Dubois", "Silva", "Novak",
    "Jensen", "Okafor", "Nguyen", "Kim", "Patel", "Haddad", "Larsen", "Moreau", "Costa", "Ivanova",
    "Schmidt", "Fischer", "Romero", "Sato", "Walker", "Brown", "Lopez", "Meyer", "Hansen",
    "Bianchi", "Popescu", "Yilmaz", "Chen", "Singh", "Murphy", "Kelly", "Virtanen",
];

pub const CITIES: &[&str] = &[
    "Paris", "Berlin", "Madrid", "Lisbon", "Rome", "Vienna", "Prague", "Warsaw", "Dublin", "Oslo",
    "Helsinki", "Athens", "Tokyo", "Seoul", "Toronto", "Chicago", "Boston", "Denver", "Lima",
    "Cairo", "Nairobi", "Sydney", "Auckland", "Mumbai",
];

pub const COUNTRIES: &[&str] = &[
    "France",
    "Germany",
    "Spain",
    "Portugal",
    "Italy",
    "Japan",
    "Canada",
    "Brazil",
    "Kenya",
    "India",
    "Australia",
    "Norway",
];

pub const EMAIL_DOMAINS: &[&str] = &["example.com", "mail.org", "post.net", "inbox.io"];

pub const FIELD_ADJECTIVES: &[&str] = &[
    "Applied",
    "Modern",
    "Classical",
    "Advanced",
    "General",
    "Experimental",
    "Theoretical",
    "Computational",
    "Comparative",
    "Digital",
];

pub const FIELDS: &[&str] = &[
    "Physics",
    "History",
    "Mathematics",
    "Biology",
    "Chemistry",
    "Linguistics",
    "Economics",
    "Philosophy",
    "Art",
    "Music",
    "Engineering",
    "Statistics",
    "Geography",
    "Literature",
];

pub const BUILDINGS: &[&str] = &[
    "North Hall",
    "South Hall",
    "Main Building",
    "Science Tower",
    "Library Wing",
    "East Annex",
];

pub const TITLE_ADJECTIVES: &[&str] = &[
    "Silent", "Hidden", "Golden", "Broken", "Endless", "Distant", "Crimson", "Quiet", "Wild",
    "Frozen", "Burning", "Lost", "Secret", "Bright", "Hollow", "Velvet",
];

pub const TITLE_NOUNS: &[&str] = &[
    "River", "Garden", "Empire", "Mirror", "Harbor", "Forest", "Letter", "Voyage", "Machine",
    "Winter", "Kingdom", "Lantern", "Orchard", "Horizon", "Island", "Signal",
];

pub const GENRES: &[&str] = &[
    "novel",
    "poetry",
    "history",
    "science",
    "biography",
    "fantasy",
    "mystery",
];

pub const PRODUCT_ADJECTIVES: &[&str] = &[
    "Classic", "Compact", "Deluxe", "Eco", "Smart", "Portable", "Premium", "Basic", "Ultra",
];

pub const PRODUCT_NOUNS: &[&str] = &[
    "Lamp",
    "Chair",
    "Kettle",
    "Backpack",
    "Headphones",
    "Blender",
    "Desk",
    "Jacket",
    "Watch",
    "Camera",
    "Bottle",
    "Keyboard",
];

pub const PRODUCT_CATEGORIES: &[&str] = &[
    "home",
    "electronics",
    "kitchen",
    "clothing",
    "office",
    "outdoor",
];

pub const ORDER_STATUSES: &[&str] = &["pending", "shipped", "delivered", "cancelled"];

pub const WARD_NAMES: &[&str] = &[
    "Cedar", "Maple", "Willow", "Oak", "Birch", "Aspen", "Elm", "Pine",
];

pub const WARD_KINDS: &[&str] = &["Ward", "Unit", "Wing"];

pub const SPECIALTIES: &[&str] = &[
    "cardiology",
    "neurology",
    "oncology",
    "pediatrics",
    "surgery",
    "dermatology",
    "radiology",
];

pub const GENDERS: &[&str] = &["female", "male"];

pub const AIRPORT_WORDS: &[&str] = &["International", "Central", "Regional", "City", "National"];

pub const AIRCRAFT_MODELS: &[&str] = &[
    "A320", "A321", "A330", "A350", "B737", "B747", "B777", "B787", "E190", "ATR72",
];

pub const PILOT_RANKS: &[&str] = &["captain", "first officer", "second officer"];

pub const MUSIC_GENRES: &[&str] = &[
    "rock",
    "jazz",
    "pop",
    "folk",
    "electronic",
    "classical",
    "hip hop",
];

pub const TEAM_MASCOTS: &[&str] = &[
    "Rovers",
    "United",
    "Lions",
    "Eagles",
    "Wanderers",
    "Rangers",
    "Athletic",
];

pub const POSITIONS: &[&str] = &["goalkeeper", "defender", "midfielder", "forward"];

pub const JOB_TITLES: &[&str] = &[
    "engineer",
    "analyst",
    "manager",
    "designer",
    "accountant",
    "recruiter",
    "consultant",
];

pub const PROJECT_WORDS: &[&str] = &[
    "Apollo", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris", "Jade",
];

pub const PROJECT_KINDS: &[&str] = &[
    "Migration",
    "Platform",
    "Redesign",
    "Audit",
    "Launch",
    "Pilot",
];

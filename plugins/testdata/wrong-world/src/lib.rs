//! A valid component that targets a different world (exports `run`), for the host's upload checks.

wit_bindgen::generate!({
    inline: "
        package test:wrong;
        world other {
            export run: func(input: string) -> string;
        }
    ",
    world: "other",
});

struct Other;

impl Guest for Other {
    fn run(input: String) -> String {
        input
    }
}

export!(Other);

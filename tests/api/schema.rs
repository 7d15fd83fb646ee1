#[test]
fn schema_graphql_matches_the_built_schema() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql exists at the repository root");
    let built = seatstorm::schema::sdl();
    assert!(
        committed == built,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}

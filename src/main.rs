fn main() {
    std::process::exit(i32::from(rolesh::run()));
}

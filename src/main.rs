fn main() {
    println!("wirelens");
}

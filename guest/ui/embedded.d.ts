// Types of the UI's embedded assets, imported as text (`with { type: "text" }`)
// so `bun build --compile` puts them inside the binary.
declare module "*.css" {
  const text: string;
  export default text;
}
declare module "@xterm/xterm/lib/xterm.js" {
  const text: string;
  export default text;
}

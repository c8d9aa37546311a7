// Small DOM helpers shared by every module: find an element by id, build one, vet a Spotify link.

const SPOTIFY_LINK = /^https:\/\/open\.spotify\.com\//;

export const $ = (id) => document.getElementById(id);

/** An element with attributes (on* as listeners, className as the class) and children; null,
 * undefined and false are left out, of both. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** ``url`` when it is an open.spotify.com address, else null (a link never goes anywhere else). */
export const spotifyHref = (url) => (url && SPOTIFY_LINK.test(url) ? url : null);

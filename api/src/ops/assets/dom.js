// The operator pages' shared DOM helpers (the dashboard and the business page load this first).
"use strict";

// An element with attributes and children; text children become text nodes (never innerHTML).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The smallest of 1, 2, 5 × 10^k not below n, so an axis reads in round numbers.
function niceCeiling(n) {
  if (n <= 0) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(n)));
  return [1, 2, 5, 10].map((f) => f * power).find((v) => v >= n);
}

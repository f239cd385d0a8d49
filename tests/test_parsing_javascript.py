"""JavaScript parsing (.js, .jsx, .mjs, .cjs) on the real grammar."""

from __future__ import annotations

import os

from repoctx.parsing import identifiers_before, language_for_path, parse_file
from repoctx.types import ImportBinding
from tests.parsing_support import by_name, defs, parse_broken, parse_clean

CART = """\
'use strict';
import express from 'express';
import { debounce as throttle, pick } from 'lodash-es';
import * as db from '../db/index.js';
const { promisify } = require('util');
const { readFile: read, stat } = require('fs');
var legacy = require('./legacy'), other = 1;
require('dotenv/config');
export { Cart as ShoppingCart } from './cart.js';
export * as helpers from './helpers.mjs';

/** Prices below this are free. */
export const FREE_LIMIT = 0.5;

/**
 * A shopping cart kept in memory.
 */
export default class Cart extends EventEmitter {
  #items = [];
  static instances = 0;

  constructor(owner) {
    super();
    this.owner = owner;
  }

  // Adds an item and notifies listeners.
  add(item, qty = 1) {
    this.#items.push({ ...item, qty });
    this.emit('change');
  }

  get size() {
    return this.#items.length;
  }
}

export async function checkout(cart, { gateway, retries = 3 } = {}) {
  return gateway.charge(cart.total());
}

export const format = (amount) => `${amount.toFixed(2)} EUR`;

function* ids() {
  let i = 0;
  while (true) yield i++;
}
"""


def test_extensions_map_to_javascript():
    for path in ("src/cart.js", "src/App.jsx", "lib/x.mjs", "lib/y.cjs"):
        assert language_for_path(path) == "javascript"


def test_definitions():
    parsed = parse_clean("src/cart.mjs", CART, "javascript")
    assert defs(parsed) == {
        ("variable", "legacy"),
        ("variable", "other"),
        ("variable", "FREE_LIMIT"),
        ("class", "Cart"),
        ("field", "Cart.#items"),
        ("field", "Cart.instances"),
        ("method", "Cart.constructor"),
        ("method", "Cart.add"),
        ("method", "Cart.size"),
        ("function", "checkout"),
        ("function", "format"),
        ("function", "ids"),
    }
    cart = by_name(parsed, "Cart")
    assert cart.signature == "export default class Cart extends EventEmitter"
    assert cart.docstring == "A shopping cart kept in memory."
    add = by_name(parsed, "Cart.add")
    assert add.signature == "add(item, qty = 1)"
    assert add.docstring == "Adds an item and notifies listeners."
    assert by_name(parsed, "checkout").signature == (
        "export async function checkout(cart, { gateway, retries = 3 } = {})"
    )
    assert by_name(parsed, "format").signature == "export const format = (amount) => `${amount.toFixed(2)} EUR`;"
    assert by_name(parsed, "ids").signature == "function* ids()"
    assert by_name(parsed, "FREE_LIMIT").docstring == "Prices below this are free."
    lines = CART.split("\n")
    assert lines[by_name(parsed, "ids").end_line - 1] == "}"


def test_imports_esm_and_commonjs():
    parsed = parse_file("src/cart.mjs", CART)
    assert parsed.imports == [
        ImportBinding("express", {"express": "default"}, 0, 1, "javascript"),
        ImportBinding("lodash-es", {"throttle": "debounce", "pick": "pick"}, 0, 2, "javascript"),
        ImportBinding("../db/index.js", {"db": "../db/index.js"}, 0, 3, "javascript"),
        ImportBinding("util", {"promisify": "promisify"}, 0, 4, "javascript"),
        ImportBinding("fs", {"read": "readFile", "stat": "stat"}, 0, 5, "javascript"),
        ImportBinding("./legacy", {"legacy": "./legacy"}, 0, 6, "javascript"),
        ImportBinding("dotenv/config", {}, 0, 7, "javascript"),
        ImportBinding("./cart.js", {"ShoppingCart": "Cart"}, 0, 8, "javascript"),
        ImportBinding("./helpers.mjs", {"helpers": "./helpers.mjs"}, 0, 9, "javascript"),
    ]


def test_jsx_component_and_identifiers():
    text = """\
import React from 'react';
import { Price } from './Price';

export function Basket({ items, onRemove }) {
  const total = items.reduce((sum, item) => sum + item.price, 0);
  return (
    <ul className="basket">
      {items.map((item) => <li key={item.id}>{item.name}</li>)}
      <Price value={total} />
    </ul>
  );
}
"""
    parsed = parse_file("src/Basket.jsx", text)
    assert not parsed.has_errors
    assert defs(parsed) == {("function", "Basket")}
    assert by_name(parsed, "Basket").signature == "export function Basket({ items, onRemove })"
    names = identifiers_before(text, "javascript", 8, len("      <Price value={total"))
    assert names[:3] == ["total", "value", "Price"]
    assert names.index("reduce") > names.index("name")


def test_broken_buffer_keeps_definitions():
    text = """\
const api = require('./api');

class Store {
  load(key) {
    return api.get(key
  }

  save(key, value) {
    api.put(key, value);
  }
}

function helper() { return 1; }
"""
    parsed = parse_broken("store.js", text)
    assert {("class", "Store"), ("method", "Store.load"), ("method", "Store.save"), ("function", "helper")} <= defs(
        parsed
    )
    assert parsed.imports[0].module == "./api"


def test_garbage():
    parsed = parse_file("x.js", os.urandom(2048).decode("latin-1"))
    assert parsed.has_errors and parsed.definitions == [] and parsed.imports == []

"""TypeScript and TSX parsing on the real grammars."""

from __future__ import annotations

import os

from repoctx.parsing import definition_at, identifier_uses, identifiers_before, parse_file
from repoctx.types import ImportBinding
from tests.parsing_support import by_name, defs, parse_broken, parse_clean

SERVICE = """\
import Axios, { AxiosError as HttpError, type AxiosInstance } from 'axios';
import * as path from 'node:path';
import type { Invoice } from '../models/invoice';
import fs = require('fs');
import './polyfills';
const legacy = require('./legacy');
export { formatMoney as money } from './format';
export * from './types';

/** Maximum retries for a request. */
export const MAX_RETRIES = 3;

// A callback for progress.
export type Progress = (done: number, total: number) => void;

export enum Status { Draft, Sent = 'sent', Paid }

/**
 * Remote access to invoices.
 */
export interface InvoiceApi {
  baseUrl: string;
  fetch(id: string): Promise<Invoice>;
}

@Injectable({ providedIn: 'root' })
export class InvoiceService extends BaseService implements InvoiceApi {
  private readonly http: AxiosInstance;
  baseUrl = '/api';

  constructor(private readonly config: Config) {
    super();
    this.http = Axios.create({ baseURL: config.url });
  }

  /**
   * Loads one invoice.
   * Retries on network errors.
   */
  @Memoize()
  async fetch(id: string): Promise<Invoice> {
    const response = await this.http.get<Invoice>(`/invoices/${id}`);
    return response.data;
  }

  static fromEnv(): InvoiceService {
    return new InvoiceService(loadConfig());
  }
}

export function totalOf(invoices: Invoice[], status: Status = Status.Paid): number {
  return invoices.filter((i) => i.status === status).reduce((sum, i) => sum + i.amount, 0);
}

export const toCents = (amount: number): number => Math.round(amount * 100);

export default abstract class Exporter<T> {
  abstract export(items: T[]): Promise<void>;
}
"""


def test_definitions():
    parsed = parse_clean("src/invoices/service.ts", SERVICE, "typescript")
    assert defs(parsed) == {
        ("variable", "legacy"),
        ("variable", "MAX_RETRIES"),
        ("type_alias", "Progress"),
        ("enum", "Status"),
        ("field", "Status.Draft"),
        ("field", "Status.Sent"),
        ("field", "Status.Paid"),
        ("interface", "InvoiceApi"),
        ("field", "InvoiceApi.baseUrl"),
        ("method", "InvoiceApi.fetch"),
        ("class", "InvoiceService"),
        ("field", "InvoiceService.http"),
        ("field", "InvoiceService.baseUrl"),
        ("method", "InvoiceService.constructor"),
        ("method", "InvoiceService.fetch"),
        ("method", "InvoiceService.fromEnv"),
        ("function", "totalOf"),
        ("function", "toCents"),
        ("class", "Exporter"),
        ("method", "Exporter.export"),
    }


def test_signatures_docs_and_ranges():
    parsed = parse_file("src/invoices/service.ts", SERVICE)
    lines = SERVICE.split("\n")
    service = by_name(parsed, "InvoiceService")
    assert service.signature == "export class InvoiceService extends BaseService implements InvoiceApi"
    assert lines[service.start_line] == "@Injectable({ providedIn: 'root' })"
    assert lines[service.end_line - 1] == "}"

    fetch = by_name(parsed, "InvoiceService.fetch")
    assert fetch.signature == "async fetch(id: string): Promise<Invoice>"
    assert fetch.docstring == "Loads one invoice.\nRetries on network errors."
    assert lines[fetch.start_line].strip() == "/**"  # doc comment and decorator included
    assert lines[fetch.end_line - 1].strip() == "}"
    assert "@Memoize()" in lines[fetch.start_line : fetch.end_line][4]

    api = by_name(parsed, "InvoiceApi")
    assert api.signature == "export interface InvoiceApi"
    assert api.docstring == "Remote access to invoices."
    assert by_name(parsed, "InvoiceApi.fetch").signature == "fetch(id: string): Promise<Invoice>"

    assert by_name(parsed, "totalOf").signature == (
        "export function totalOf(invoices: Invoice[], status: Status = Status.Paid): number"
    )
    assert by_name(parsed, "toCents").signature == (
        "export const toCents = (amount: number): number => Math.round(amount * 100);"
    )
    retries = by_name(parsed, "MAX_RETRIES")
    assert retries.signature == "export const MAX_RETRIES = 3;"
    assert retries.docstring == "Maximum retries for a request."
    assert by_name(parsed, "Progress").docstring == "A callback for progress."
    assert by_name(parsed, "InvoiceService.constructor").signature == (
        "constructor(private readonly config: Config)"
    )
    assert by_name(parsed, "InvoiceService.http").signature == "private readonly http: AxiosInstance"
    assert by_name(parsed, "Exporter").signature == "export default abstract class Exporter<T>"
    assert by_name(parsed, "Exporter.export").signature == "abstract export(items: T[]): Promise<void>"


def test_imports():
    parsed = parse_file("src/invoices/service.ts", SERVICE)
    assert parsed.imports == [
        ImportBinding(
            "axios", {"Axios": "default", "HttpError": "AxiosError", "AxiosInstance": "AxiosInstance"}, 0, 0, "typescript"
        ),
        ImportBinding("node:path", {"path": "node:path"}, 0, 1, "typescript"),
        ImportBinding("../models/invoice", {"Invoice": "Invoice"}, 0, 2, "typescript"),
        ImportBinding("fs", {"fs": "fs"}, 0, 3, "typescript"),
        ImportBinding("./polyfills", {}, 0, 4, "typescript"),
        ImportBinding("./legacy", {"legacy": "./legacy"}, 0, 5, "typescript"),
        ImportBinding("./format", {"money": "formatMoney"}, 0, 6, "typescript"),
        ImportBinding("./types", {}, 0, 7, "typescript", wildcard=True),
    ]


def test_identifiers_before_and_uses():
    text = "const client = Axios.create({ baseURL: env.url });\nconst res = await client.get<Invoice>(id);\nres."
    assert identifiers_before(text, "typescript", 2, 4) == [
        "res",
        "id",
        "Invoice",
        "get",
        "client",
        "url",
        "env",
        "baseURL",
        "create",
        "Axios",
    ]
    uses = identifier_uses("let total: Money = sum(items);", "typescript")
    assert uses == [("total", 0, 4), ("Money", 0, 11), ("sum", 0, 19), ("items", 0, 23)]


def test_tsx_component():
    text = """\
import React, { useState } from 'react';
import { Button } from './Button';

interface Props { title: string; onSave(): void }

/** The invoice editor. */
export function Editor({ title, onSave }: Props) {
  const [draft, setDraft] = useState(title);
  return <Button label={draft} onClick={() => onSave()} />;
}

export const Row = ({ label }: { label: string }) => <tr><td>{label}</td></tr>;
"""
    parsed = parse_clean("src/Editor.tsx", text, "tsx")
    assert defs(parsed) == {
        ("interface", "Props"),
        ("field", "Props.title"),
        ("method", "Props.onSave"),
        ("function", "Editor"),
        ("function", "Row"),
    }
    editor = by_name(parsed, "Editor")
    assert editor.signature == "export function Editor({ title, onSave }: Props)"
    assert editor.docstring == "The invoice editor."
    assert [i.module for i in parsed.imports] == ["react", "./Button"]
    assert parsed.imports[0].names == {"React": "default", "useState": "useState"}
    assert "Button" in identifiers_before(text, "tsx", 8, 30)


def test_missing_closing_brace_keeps_later_definitions():
    text = """\
import { Api } from './api';

export class Service {
  private api: Api;

  load(id: string) {
    if (id) {
      return this.api.get(id);
  }

  save(item: Item): void {
    this.api.put(item);
  }
}

export function helper(a: number): number {
  return a;
}
"""
    parsed = parse_broken("src/service.ts", text)
    assert defs(parsed) == {
        ("class", "Service"),
        ("field", "Service.api"),
        ("method", "Service.load"),
        ("method", "Service.save"),
        ("function", "helper"),
    }
    assert by_name(parsed, "Service.save").signature == "save(item: Item): void"
    assert parsed.imports[0].names == {"Api": "Api"}


def test_unterminated_file_being_typed():
    text = "export class A {\n  m(): number { return 1; }\n  n(x: string) {\n    return x.\n"
    parsed = parse_broken("a.ts", text)
    assert {("class", "A"), ("method", "A.m"), ("method", "A.n")} <= defs(parsed)


def test_garbage_and_definition_at():
    parsed = parse_file("x.ts", os.urandom(3000).decode("latin-1"))
    assert parsed.has_errors and not parsed.definitions and not parsed.imports
    parsed = parse_file("src/invoices/service.ts", SERVICE)
    lines = SERVICE.split("\n")
    inside = lines.index("    return response.data;")
    assert definition_at(parsed, inside).qualified_name == "InvoiceService.fetch"
    assert definition_at(parsed, lines.index("  baseUrl = '/api';")).qualified_name == "InvoiceService.baseUrl"

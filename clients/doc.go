// Package clients is idharness's client registry: every identity client
// the harness can run, in any language, declared once.
//
// Each client program lives in a folder of its own beside this file with
// a client.yaml that declares it: its language, the SDK and credential of
// each client it offers, the identity modes it supports and the ways it
// can select an identity, how it is prepared (installing its pinned
// packages) and how it is started. Go clients are compiled into the
// probe and register a constructor from their folder (RegisterGo); every
// other client is a program that speaks the line protocol of
// PROTOCOL.md, driven by a Process.
//
// The probe, the scenario runner and the reports all take client names,
// modes and selectors from here; no other package lists clients.
//
// Requests are attributed to clients by where they come from, never by
// the client's cooperation: every client (an in-process Go client through
// its dialer, a program through a Relay) reaches the fake metadata
// service from a loopback address of its own, so the fake's journal says
// which client sent each request, how many a call made, and what they
// were answered.
package clients

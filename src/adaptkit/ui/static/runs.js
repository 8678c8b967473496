"use strict";
// The runs page: the table is re-rendered by the server every 2 s.
document.addEventListener("DOMContentLoaded", () => adaptkit.pollFragment(document.getElementById("runs"), 2000));

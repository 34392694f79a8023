// New organisation forms (sign-up, "create organisation"): preselect the browser's
// time zone and the currency of its locale, while the person has not chosen.
// Loaded as a file: the Content-Security-Policy forbids inline script.
(function () {
  "use strict";

  // Region of a locale (en-GB -> GB) to the currency used there.
  var CURRENCY_OF_REGION = {
    GB: "GBP", IM: "GBP", JE: "GBP", GG: "GBP", US: "USD", PR: "USD", EC: "USD", SV: "USD",
    IE: "EUR", DE: "EUR", FR: "EUR", ES: "EUR", IT: "EUR", NL: "EUR", BE: "EUR", AT: "EUR",
    PT: "EUR", FI: "EUR", GR: "EUR", LU: "EUR", SK: "EUR", SI: "EUR", EE: "EUR", LV: "EUR",
    LT: "EUR", MT: "EUR", CY: "EUR", HR: "EUR", MC: "EUR", AD: "EUR", SM: "EUR", VA: "EUR",
    CH: "CHF", LI: "CHF", SE: "SEK", NO: "NOK", DK: "DKK", IS: "ISK", PL: "PLN", CZ: "CZK",
    HU: "HUF", RO: "RON", BG: "BGN", RS: "RSD", UA: "UAH", TR: "TRY", RU: "RUB",
    CA: "CAD", MX: "MXN", BR: "BRL", AR: "ARS", CL: "CLP", CO: "COP", PE: "PEN", UY: "UYU",
    AU: "AUD", NZ: "NZD", JP: "JPY", CN: "CNY", HK: "HKD", TW: "TWD", KR: "KRW", SG: "SGD",
    MY: "MYR", IN: "INR", PK: "PKR", BD: "BDT", LK: "LKR", ID: "IDR", TH: "THB", VN: "VND",
    PH: "PHP", ZA: "ZAR", NG: "NGN", KE: "KES", GH: "GHS", EG: "EGP", MA: "MAD", TN: "TND",
    AE: "AED", SA: "SAR", QA: "QAR", KW: "KWD", IL: "ILS", JO: "JOD"
  };

  function browserTimeZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function browserCurrency() {
    var locales = (navigator.languages && navigator.languages.length)
      ? navigator.languages : [navigator.language || ""];
    for (var i = 0; i < locales.length; i++) {
      var parts = String(locales[i]).split(/[-_]/);
      for (var j = 1; j < parts.length; j++) {
        var currency = CURRENCY_OF_REGION[parts[j].toUpperCase()];
        if (currency) return currency;
      }
    }
    return "";
  }

  function choose(select, value) {
    if (!value) return;
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === value) {
        select.value = value;
        return;
      }
    }
  }

  function preselect() {
    var selects = document.querySelectorAll("select[data-browser-default]");
    for (var i = 0; i < selects.length; i++) {
      var select = selects[i];
      // A form shown again with errors keeps what the person chose.
      if (select.form && select.form.querySelector(".errorlist, [role='alert']")) continue;
      var which = select.getAttribute("data-browser-default");
      choose(select, which === "time_zone" ? browserTimeZone() : browserCurrency());
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", preselect);
  } else {
    preselect();
  }
})();

"""Reading a campaign's results: the Pareto front, hypervolume and plots (``report``), the self-contained HTML
page (``html_report``), ``workflow status`` and ``workflow pareto`` (``status``), exports, and fitting
calibration maps to experiment (``calibrate``). It reads the campaign store and never writes it; the campaign
loop imports nothing from here."""

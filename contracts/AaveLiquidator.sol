// SPDX-License-Identifier: MIT
// tapedeck's flash-loan liquidation executor for Aave v3 (compiled by solc-js at bootstrap,
// `make contracts`; see sim/chain/executor.py for how the sim deploys and calls it).
//
// One transaction: flashLoanSimple(debt asset, debtToCover) -> liquidationCall(collateral, debt,
// user, debtToCover, false) -> swap the seized collateral through `route` (Uniswap V2 pairs and V3
// pools, called directly: no router) -> the pool pulls loan + premium -> the rest of the debt
// asset goes to the owner. It reverts unless that rest is at least `minProfit`, so a liquidation
// that lost its race, or whose pools moved, costs only gas.
//
// Revert reasons are custom errors, decoded by sim/chain/executor.py: Aave's own string codes
// (e.g. "45": health factor not below 1, i.e. someone liquidated first) bubble up unchanged.
pragma solidity 0.8.37;

interface IERC20 {
    function balanceOf(address) external view returns (uint256);
    function transfer(address, uint256) external returns (bool);
    function approve(address, uint256) external returns (bool);
}

interface IAavePool {
    function flashLoanSimple(address receiver, address asset, uint256 amount, bytes calldata params,
                             uint16 referralCode) external;
    function liquidationCall(address collateralAsset, address debtAsset, address user, uint256 debtToCover,
                             bool receiveAToken) external;
}

interface IUniswapV2Pair {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function getReserves() external view returns (uint112, uint112, uint32);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

interface IUniswapV3Pool {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function swap(address recipient, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96,
                  bytes calldata data) external returns (int256, int256);
}

contract AaveLiquidator {
    /// One hop of the route: a V2 pair (`v3 == false`) or a V3 pool, swapped exact-in.
    struct Hop {
        address pool;
        bool v3;
    }

    struct Job {
        address collateral;
        address debt;
        address user;
        uint256 debtToCover;
        Hop[] route;
        uint256 minProfit;
    }

    error NotOwner(address caller);
    error NotPool(address caller);
    error BadInitiator(address initiator);
    error BadCallback(address caller);
    error NothingSeized();
    error RouteDoesNotEnd(address token, address debt);
    error TokenNotInPool(address token, address pool);
    error ProfitBelowMinimum(int256 profit, uint256 minProfit);
    error TransferFailed(address token, address to, uint256 amount);
    error CoinbasePaymentFailed(uint256 amount);

    /// What the owner got, in the debt asset (emitted so receipts carry the executor's own account).
    event Liquidated(address indexed user, address indexed collateral, address indexed debt, uint256 debtRepaid,
                     uint256 collateralSeized, uint256 premium, uint256 profit);

    uint160 private constant MIN_SQRT_RATIO_PLUS_1 = 4295128740;
    uint160 private constant MAX_SQRT_RATIO_MINUS_1 = 1461446703485210103287273052203988822378723970341;

    address public immutable owner;
    IAavePool public immutable pool;
    address private transient activeV3Pool; // the V3 pool whose swap callback is expected now (EIP-1153)

    constructor(address aavePool) {
        owner = msg.sender;
        pool = IAavePool(aavePool);
    }

    receive() external payable {}

    /// Owner-only entry. `msg.value`, if any, is paid to the block's coinbase at the end: a bundle's
    /// payment to the builder besides its priority fee.
    function liquidate(address collateral, address debt, address user, uint256 debtToCover, Hop[] calldata route,
                       uint256 minProfit) external payable returns (uint256 profit) {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        uint256 before = IERC20(debt).balanceOf(address(this));
        Job memory job = Job(collateral, debt, user, debtToCover, route, minProfit);
        pool.flashLoanSimple(address(this), debt, debtToCover, abi.encode(job, before), 0);
        profit = IERC20(debt).balanceOf(address(this)) - before;
        _transfer(debt, owner, profit);
        if (msg.value != 0) {
            (bool ok,) = block.coinbase.call{value: msg.value}("");
            if (!ok) revert CoinbasePaymentFailed(msg.value);
        }
    }

    /// Aave's flash-loan callback: liquidate, swap, check the profit, approve the repayment.
    function executeOperation(address asset, uint256 amount, uint256 premium, address initiator,
                              bytes calldata params) external returns (bool) {
        if (msg.sender != address(pool)) revert NotPool(msg.sender);
        if (initiator != address(this)) revert BadInitiator(initiator);
        (Job memory job, uint256 before) = abi.decode(params, (Job, uint256));
        (uint256 repaid, uint256 seized) = _liquidateAndSell(job, amount, before);
        uint256 owed = amount + premium;
        int256 profit = int256(IERC20(asset).balanceOf(address(this)) - before) - int256(owed);
        if (profit < int256(job.minProfit)) revert ProfitBelowMinimum(profit, job.minProfit);
        IERC20(asset).approve(address(pool), owed);
        emit Liquidated(job.user, job.collateral, asset, repaid, seized, premium, uint256(profit));
        return true;
    }

    /// liquidationCall with the borrowed debt asset, then the seized collateral sold along the route.
    function _liquidateAndSell(Job memory job, uint256 amount, uint256 before)
        private returns (uint256 repaid, uint256 seized) {
        uint256 held = IERC20(job.collateral).balanceOf(address(this));
        IERC20(job.debt).approve(address(pool), amount);
        pool.liquidationCall(job.collateral, job.debt, job.user, job.debtToCover, false);
        seized = IERC20(job.collateral).balanceOf(address(this)) - held;
        if (seized == 0) revert NothingSeized();
        repaid = amount - (IERC20(job.debt).balanceOf(address(this)) - before);
        address token = job.collateral;
        uint256 amountIn = seized;
        for (uint256 i = 0; i < job.route.length; i++) {
            (token, amountIn) = job.route[i].v3
                ? _swapV3(job.route[i].pool, token, amountIn)
                : _swapV2(job.route[i].pool, token, amountIn);
        }
        if (token != job.debt) revert RouteDoesNotEnd(token, job.debt);
    }

    /// UniswapV2Library.getAmountOut on the pair's reserves, paid in first, as the router does.
    function _swapV2(address pair, address tokenIn, uint256 amountIn) private returns (address, uint256) {
        address token0 = IUniswapV2Pair(pair).token0();
        address token1 = IUniswapV2Pair(pair).token1();
        if (tokenIn != token0 && tokenIn != token1) revert TokenNotInPool(tokenIn, pair);
        (uint112 r0, uint112 r1,) = IUniswapV2Pair(pair).getReserves();
        bool zeroForOne = tokenIn == token0;
        (uint256 rIn, uint256 rOut) = zeroForOne ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        uint256 withFee = amountIn * 997;
        uint256 out = withFee * rOut / (rIn * 1000 + withFee);
        _transfer(tokenIn, pair, amountIn);
        (uint256 out0, uint256 out1) = zeroForOne ? (uint256(0), out) : (out, uint256(0));
        IUniswapV2Pair(pair).swap(out0, out1, address(this), "");
        return (zeroForOne ? token1 : token0, out);
    }

    /// An exact-input V3 swap with no price limit; the pool is paid in the callback.
    function _swapV3(address v3pool, address tokenIn, uint256 amountIn) private returns (address, uint256) {
        address token0 = IUniswapV3Pool(v3pool).token0();
        address token1 = IUniswapV3Pool(v3pool).token1();
        if (tokenIn != token0 && tokenIn != token1) revert TokenNotInPool(tokenIn, v3pool);
        bool zeroForOne = tokenIn == token0;
        activeV3Pool = v3pool;
        (int256 d0, int256 d1) = IUniswapV3Pool(v3pool).swap(
            address(this), zeroForOne, int256(amountIn),
            zeroForOne ? MIN_SQRT_RATIO_PLUS_1 : MAX_SQRT_RATIO_MINUS_1, abi.encode(tokenIn));
        activeV3Pool = address(0);
        return zeroForOne ? (token1, uint256(-d1)) : (token0, uint256(-d0));
    }

    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata data) external {
        if (msg.sender != activeV3Pool || activeV3Pool == address(0)) revert BadCallback(msg.sender);
        address tokenIn = abi.decode(data, (address));
        _transfer(tokenIn, msg.sender, uint256(amount0Delta > 0 ? amount0Delta : amount1Delta));
    }

    /// Owner sweeps anything left here (ETH when `token` is zero).
    function withdraw(address token, uint256 amount) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        if (token == address(0)) {
            (bool ok,) = owner.call{value: amount}("");
            if (!ok) revert TransferFailed(token, owner, amount);
        } else {
            _transfer(token, owner, amount);
        }
    }

    function _transfer(address token, address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok, bytes memory data) = token.call(abi.encodeWithSelector(IERC20.transfer.selector, to, amount));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed(token, to, amount);
    }
}
